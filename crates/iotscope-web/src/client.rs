//! The client's address behind trusted reverse proxies, and the key its
//! limits are counted under.
//!
//! Only a peer inside `[web] trusted_proxies` may say who the client is:
//! from such a peer the `Forwarded` header (RFC 7239), else
//! `X-Forwarded-For`, is read from the right, skipping trusted hops, and
//! the right-most untrusted hop is the client (the rest of the list is
//! whatever the client chose to send). From any other peer the headers are
//! ignored and the peer is the client. The same peer's `X-Forwarded-Proto`
//! (or `proto=` of `Forwarded`) says whether the visitor came over HTTPS.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;

/// Networks whose peers are reverse proxies we run.
#[derive(Clone, Debug, Default)]
pub struct Proxies(Vec<(IpAddr, u8)>);

/// Who asked: the client's address and whether it came over HTTPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client's address (IPv4-mapped IPv6 as IPv4).
    pub ip: IpAddr,
    /// True when a trusted proxy says the visitor spoke HTTPS to it.
    pub https: bool,
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v) => {
            let bits = u32::from(v);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v) => {
            let bits = u128::from(v);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl Proxies {
    /// Parses CIDRs ("10.0.0.0/8", "::1/128") and single addresses.
    /// `Err` names the entry that is neither.
    pub fn parse(entries: &[String]) -> Result<Proxies, String> {
        let mut nets = Vec::new();
        for e in entries {
            let t = e.trim();
            let (addr, prefix) = match t.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (t, None),
            };
            let ip: IpAddr = addr.parse().map_err(|_| {
                format!(
                    "trusted_proxies entry {e:?} is not an address or CIDR (10.0.0.0/8, ::1/128)"
                )
            })?;
            let ip = ip.to_canonical();
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => match p.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => {
                        return Err(format!(
                            "trusted_proxies entry {e:?}: the prefix length must be 0 to {max}"
                        ))
                    }
                },
            };
            nets.push((mask(ip, prefix), prefix));
        }
        Ok(Proxies(nets))
    }

    /// True when `ip` is one of our proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0
            .iter()
            .any(|&(net, p)| net.is_ipv4() == ip.is_ipv4() && mask(ip, p) == net)
    }

    /// The client of a request that arrived from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Client {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return Client {
                ip: peer,
                https: false,
            };
        }
        let forwarded: Vec<String> = headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
            .collect();
        let (hops, proto): (Vec<Option<IpAddr>>, Option<String>) = if !forwarded.is_empty() {
            let hops = forwarded
                .iter()
                .map(|el| param(el, "for").and_then(|v| node_ip(&v)))
                .collect();
            let proto = forwarded.last().and_then(|el| param(el, "proto"));
            (hops, proto)
        } else {
            let hops = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(',').map(|h| node_ip(h.trim())).collect::<Vec<_>>())
                .collect();
            let proto = headers
                .get_all("x-forwarded-proto")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .map(|p| p.trim().to_string());
            (hops, proto)
        };
        let https = proto.is_some_and(|p| p.eq_ignore_ascii_case("https"));
        // From the right: trusted hops are ours; the first other one is the
        // client. A hop we cannot read ends the walk at the last hop we
        // trust (the limits then count that proxy, never a forged name).
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => client = *ip,
                Some(ip) => {
                    client = *ip;
                    break;
                }
                None => break,
            }
        }
        Client { ip: client, https }
    }
}

/// A parameter of one `Forwarded` element (`for=`, `proto=`), unquoted.
fn param(element: &str, name: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The address of a node: "192.0.2.1", "192.0.2.1:4711", "[2001:db8::1]",
/// "[2001:db8::1]:4711", "2001:db8::1"; `None` for "unknown", obfuscated
/// identifiers ("_hidden") and anything else.
fn node_ip(node: &str) -> Option<IpAddr> {
    let n = node.trim().trim_matches('"');
    if let Some(rest) = n.strip_prefix('[') {
        let (addr, _) = rest.split_once(']')?;
        return addr
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v| IpAddr::V6(v).to_canonical());
    }
    if let Ok(ip) = n.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (addr, port) = n.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The key a client's limits are counted under: an IPv4 address, or the
/// /64 of an IPv6 address (one host or one home gets a /64, RFC 6177, so a
/// per-/128 limit would give it 2^64 allowances).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        v6 => mask(v6, 64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_name_the_client() {
        let p = Proxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let xff = headers(&[
            ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        // From the proxy: the right-most untrusted hop.
        assert_eq!(
            p.client(ip("10.0.0.5"), &xff),
            Client {
                ip: ip("203.0.113.9"),
                https: true
            }
        );
        // From anyone else: the peer, whatever it claims.
        assert_eq!(
            p.client(ip("198.51.100.7"), &xff),
            Client {
                ip: ip("198.51.100.7"),
                https: false
            }
        );
        // A client that forges a left-most hop does not get it.
        let forged = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7")]);
        assert_eq!(p.client(ip("10.0.0.5"), &forged).ip, ip("198.51.100.7"));
        // Forwarded (RFC 7239) wins, with ports, brackets and quotes.
        let fwd = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\";proto=https",
            ),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        assert_eq!(
            p.client(ip("::1"), &fwd),
            Client {
                ip: ip("2001:db8:cafe::17"),
                https: true
            }
        );
        // An obfuscated hop ends the walk at the proxy.
        let hidden = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(p.client(ip("10.0.0.5"), &hidden).ip, ip("10.0.0.5"));
        // IPv4-mapped peers are IPv4.
        assert!(p.trusts(ip("::ffff:10.2.3.4")));
    }

    #[test]
    fn bad_entries_say_which() {
        assert!(Proxies::parse(&["10.0.0.0/33".into()])
            .unwrap_err()
            .contains("10.0.0.0/33"));
        assert!(Proxies::parse(&["proxy.example".into()])
            .unwrap_err()
            .contains("proxy.example"));
    }

    #[test]
    fn ipv6_limits_count_per_64() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_ne!(limit_key(ip("192.0.2.1")), limit_key(ip("192.0.2.2")));
    }
}
