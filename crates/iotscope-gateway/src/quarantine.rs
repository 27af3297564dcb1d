//! Which LAN hosts scan: a host that sends TCP SYNs to `threshold`
//! distinct addresses within a sliding `window`, or any SYN with Mirai's
//! fingerprint (sequence number = destination address, Mirai's
//! scanner.c), is to be quarantined. Sans-IO: packets in, verdicts out;
//! the gateway's capture loop feeds it and puts the verdicts into the
//! nftables quarantine set.
//!
//! Memory is bounded: at most `threshold` destinations per host (a host
//! that reaches it is quarantined and forgotten) and at most
//! [`MAX_HOSTS`] hosts, the idlest forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;

use iotscope_telescope::Prefix;
use iotscope_wire::{fingerprint, Addr, Class, Packet};
use serde::Serialize;

/// The kernel filter (tcpdump's syntax) for the capture that feeds the
/// watcher: IPv4 TCP SYNs without ACK, and IPv6 TCP (libpcap's `tcp[]`
/// does not reach past an IPv6 header; the decoder picks the SYNs).
/// Non-first IPv4 fragments and IPv6 other than plain UDP and ICMPv6 (TCP,
/// and anything behind extension headers) pass too: a SYN split into
/// fragments, or behind a Hop-by-Hop header, hides its flags from the
/// kernel filter, and the decoder decides.
pub const SYN_FILTER: &str = "(tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn) or (ip and ip[6:2] & 0x1fff != 0) or (ip6 and not ip6 proto 17 and not ip6 proto 58)";

/// Most LAN hosts followed at once.
pub const MAX_HOSTS: usize = 65_536;

/// Destinations kept as evidence in a verdict.
pub const EVIDENCE: usize = 16;

/// Why a host is quarantined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// SYNs to `distinct` addresses within `window_s` seconds.
    Scan {
        /// Distinct destinations.
        distinct: u32,
        /// The window, s.
        window_s: u64,
    },
    /// A SYN whose sequence number is its destination address.
    MiraiFingerprint,
}

/// A host to quarantine, with its evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The host.
    pub src: IpAddr,
    /// Why.
    pub reason: Reason,
    /// Its first SYN counted, ns since the epoch.
    pub first_ns: i64,
    /// The SYN that decided, ns.
    pub last_ns: i64,
    /// SYNs counted.
    pub syns: u64,
    /// Up to [`EVIDENCE`] of the destinations (address, port), oldest first.
    pub destinations: Vec<(IpAddr, u16)>,
}

#[derive(Default)]
struct Host {
    /// (destination, port, last SYN ns), at most `threshold`.
    dsts: Vec<(Addr, u16, i64)>,
    first_ns: i64,
    last_ns: i64,
    syns: u64,
    /// Quarantined until (ns): no second verdict before.
    until_ns: i64,
}

/// What the watcher counts.
#[derive(Clone, Debug)]
pub struct WatchSettings {
    /// Distinct destinations that make a scan.
    pub threshold: u32,
    /// The window, ns.
    pub window_ns: i64,
    /// How long a quarantine lasts, ns.
    pub timeout_ns: i64,
    /// Only SYNs to these ports count (empty: all).
    pub ports: Vec<u16>,
    /// Only sources in these prefixes are watched (the LAN).
    pub lan: Vec<Prefix>,
    /// Sources never quarantined.
    pub exempt: Vec<Prefix>,
}

/// The watcher.
pub struct ScanWatch {
    s: WatchSettings,
    hosts: HashMap<Addr, Host>,
}

impl ScanWatch {
    /// A watcher with `settings`.
    pub fn new(settings: WatchSettings) -> ScanWatch {
        ScanWatch {
            s: settings,
            hosts: HashMap::new(),
        }
    }

    /// Hosts followed now.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Looks at one packet seen at `ts_ns`; a verdict when it makes its
    /// source a scanner. TCP SYNs (no ACK) from watched sources count, and
    /// non-first TCP fragments (their port unknown): splitting a SYN into
    /// fragments must not hide a scan, and a device that fragments its TCP
    /// is not doing anything ordinary.
    pub fn observe(&mut self, ts_ns: i64, p: &Packet) -> Option<Verdict> {
        let fragment = p.protocol == iotscope_wire::packet::proto::TCP && p.later_fragment;
        if p.class != Class::TcpSyn && !fragment {
            return None;
        }
        if !self.s.lan.iter().any(|l| l.contains(p.src))
            || self.s.exempt.iter().any(|l| l.contains(p.src))
        {
            return None;
        }
        // Traffic to the LAN's own addresses is what a LAN host does to
        // its printer; scans that matter here leave the LAN. Both count:
        // Mirai also scans the local network.
        let mirai = fingerprint::is_mirai(p);
        let counted = fragment || self.s.ports.is_empty() || self.s.ports.contains(&p.dst_port);
        if !mirai && !counted {
            return None;
        }
        if !self.hosts.contains_key(&p.src) && self.hosts.len() >= MAX_HOSTS {
            self.evict(ts_ns);
            if self.hosts.len() >= MAX_HOSTS {
                return None;
            }
        }
        let window = self.s.window_ns;
        let threshold = self.s.threshold as usize;
        let h = self.hosts.entry(p.src).or_default();
        if ts_ns < h.until_ns {
            return None;
        }
        if h.syns == 0 {
            h.first_ns = ts_ns;
        }
        h.syns += 1;
        h.last_ns = ts_ns;
        h.dsts.retain(|d| ts_ns - d.2 < window);
        match h.dsts.iter_mut().find(|d| d.0 == p.dst) {
            Some(d) => d.2 = ts_ns,
            None => h.dsts.push((p.dst, p.dst_port, ts_ns)),
        }
        let reason = if mirai {
            Reason::MiraiFingerprint
        } else if h.dsts.len() >= threshold {
            Reason::Scan {
                distinct: h.dsts.len() as u32,
                window_s: (window / 1_000_000_000) as u64,
            }
        } else {
            return None;
        };
        let v = Verdict {
            src: p.src.to_ip(),
            reason,
            first_ns: h.first_ns,
            last_ns: ts_ns,
            syns: h.syns,
            destinations: h
                .dsts
                .iter()
                .take(EVIDENCE)
                .map(|d| (d.0.to_ip(), d.1))
                .collect(),
        };
        *h = Host {
            until_ns: ts_ns.saturating_add(self.s.timeout_ns),
            ..Host::default()
        };
        Some(v)
    }

    /// Forgets what is known of `src` (its verdict could not be applied:
    /// it must not be spared for a timeout it never served).
    pub fn forget(&mut self, src: IpAddr) {
        self.hosts.remove(&Addr::from(src));
    }

    /// Forgets hosts idle for a window (and out of quarantine).
    fn evict(&mut self, now_ns: i64) {
        let window = self.s.window_ns;
        self.hosts
            .retain(|_, h| now_ns - h.last_ns < window || now_ns < h.until_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn(src: &str, dst: &str, port: u16, seq: u32) -> Packet {
        let a = |t: &str| Addr::from(t.parse::<IpAddr>().unwrap());
        Packet {
            class: Class::TcpSyn,
            src: a(src),
            dst: a(dst),
            protocol: 6,
            later_fragment: false,
            src_port: 40000,
            dst_port: port,
            has_ports: true,
            tcp_flags: 0x02,
            tcp_seq: seq,
            ip_id: 1,
            icmp_type: None,
        }
    }

    fn watch(ports: Vec<u16>) -> ScanWatch {
        ScanWatch::new(WatchSettings {
            threshold: 5,
            window_ns: 10_000_000_000,
            timeout_ns: 60_000_000_000,
            ports,
            lan: vec!["198.18.1.0/24".parse().unwrap()],
            exempt: vec!["198.18.1.250/32".parse().unwrap()],
        })
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn distinct_destinations_within_the_window() {
        let mut w = watch(vec![]);
        // The same destination again and again is not a scan.
        for i in 0..50 {
            assert!(w
                .observe(i * S / 10, &syn("198.18.1.9", "198.19.0.1", 443, 7))
                .is_none());
        }
        // Four others spread over more than the window are not either.
        for i in 0..8 {
            assert!(w
                .observe(
                    10 * S + i * 6 * S,
                    &syn("198.18.1.9", &format!("198.19.0.{}", 10 + i), 80, 7)
                )
                .is_none());
        }
        // Five within it are.
        let mut v = None;
        for i in 0..5 {
            v = v.or(w.observe(
                100 * S + i * S,
                &syn("198.18.1.9", &format!("198.19.1.{i}"), 23, 7),
            ));
        }
        let v = v.expect("a verdict");
        assert_eq!(
            v.reason,
            Reason::Scan {
                distinct: 5,
                window_s: 10
            }
        );
        assert_eq!(v.destinations.len(), 5);
        // Not twice while quarantined; again after the timeout.
        for i in 0..10 {
            assert!(w
                .observe(
                    105 * S + i * S / 10,
                    &syn("198.18.1.9", &format!("198.19.2.{i}"), 23, 7)
                )
                .is_none());
        }
        let mut again = None;
        for i in 0..5 {
            again = again.or(w.observe(
                170 * S + i * S / 10,
                &syn("198.18.1.9", &format!("198.19.3.{i}"), 23, 7),
            ));
        }
        assert!(again.is_some());
        // A verdict that could not be applied is forgotten: the next scan
        // is judged again at once.
        w.forget("198.18.1.9".parse().unwrap());
        let mut third = None;
        for i in 0..5 {
            third = third.or(w.observe(
                171 * S + i * S / 10,
                &syn("198.18.1.9", &format!("198.19.4.{i}"), 23, 7),
            ));
        }
        assert!(third.is_some());
    }

    #[test]
    fn fragmented_tcp_counts_too() {
        let mut w = watch(vec![23, 2323]);
        let mut v = None;
        for i in 0..5 {
            let mut p = syn("198.18.1.9", &format!("198.19.1.{i}"), 0, 0);
            p.class = Class::TcpOther;
            p.later_fragment = true;
            p.has_ports = false;
            v = v.or(w.observe(S + i, &p));
        }
        assert!(v.is_some());
    }

    #[test]
    fn one_mirai_syn_is_enough() {
        let mut w = watch(vec![23, 2323]);
        let dst: u32 = "198.19.7.7".parse::<std::net::Ipv4Addr>().unwrap().into();
        let v = w
            .observe(S, &syn("198.18.1.3", "198.19.7.7", 8080, dst))
            .unwrap();
        assert_eq!(v.reason, Reason::MiraiFingerprint);
    }

    #[test]
    fn ports_outside_the_lan_and_exempt_hosts() {
        let mut w = watch(vec![23, 2323]);
        for i in 0..20 {
            assert!(w
                .observe(S, &syn("198.18.1.9", &format!("198.19.1.{i}"), 443, 7))
                .is_none());
            assert!(w
                .observe(S, &syn("198.19.1.9", &format!("198.19.1.{i}"), 23, 7))
                .is_none());
            assert!(w
                .observe(S, &syn("198.18.1.250", &format!("198.19.1.{i}"), 23, 7))
                .is_none());
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let mut w = ScanWatch::new(WatchSettings {
            threshold: 1000,
            window_ns: S,
            timeout_ns: S,
            ports: vec![],
            lan: vec!["10.0.0.0/8".parse().unwrap()],
            exempt: vec![],
        });
        for i in 0..(MAX_HOSTS as u32 + 10_000) {
            let src = std::net::Ipv4Addr::from(0x0a00_0000 | i).to_string();
            w.observe(i64::from(i) * 1000, &syn(&src, "198.19.0.1", 23, 7));
        }
        assert!(w.hosts() <= MAX_HOSTS);
    }
}
