//! Which interface, addresses and next hop a SYN probe goes out with, read
//! from the kernel's own tables (`/proc/net/route`, `/proc/net/arp`,
//! `/sys/class/net`), so the defaults match what `ip route get` would say.

use std::net::Ipv4Addr;
use std::path::Path;

use super::frame::LinkAddrs;
use super::SynError;

/// The kernel's ARPHRD_ETHER and ARPHRD_LOOPBACK.
const ARPHRD_ETHER: u32 = 1;
const ARPHRD_LOOPBACK: u32 = 772;

/// The outgoing interface and link addresses for probes to `first_target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    /// Interface name.
    pub interface: String,
    /// Link addresses of the frames.
    pub link: LinkAddrs,
    /// A loopback interface (no Ethernet on the wire).
    pub loopback: bool,
}

fn parse_hex_ip(s: &str) -> Option<Ipv4Addr> {
    // /proc/net/route prints addresses as host-order hex of the network-order word.
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(Ipv4Addr::from(v.swap_bytes()))
}

/// The route `/proc/net/route` gives for `dst`: (interface, gateway if any).
pub fn route_for(routes: &str, dst: Ipv4Addr) -> Option<(String, Option<Ipv4Addr>)> {
    let d = u32::from(dst);
    let mut best: Option<(u32, String, Option<Ipv4Addr>)> = None;
    for line in routes.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Some(net), Some(gw), Some(mask)) =
            (parse_hex_ip(f[1]), parse_hex_ip(f[2]), parse_hex_ip(f[7]))
        else {
            continue;
        };
        let flags = u32::from_str_radix(f[3], 16).unwrap_or(0);
        let (net, mask) = (u32::from(net), u32::from(mask));
        // RTF_UP
        if flags & 1 == 0 || d & mask != net {
            continue;
        }
        let len = mask.count_ones();
        if best.as_ref().is_none_or(|b| len > b.0) {
            // RTF_GATEWAY
            let gw = (flags & 2 != 0).then_some(gw);
            best = Some((len, f[0].to_string(), gw));
        }
    }
    best.map(|(_, i, g)| (i, g))
}

/// The MAC `/proc/net/arp` has for `ip` on `interface` (complete entries only).
pub fn neighbour_mac(arp: &str, ip: Ipv4Addr, interface: &str) -> Option<[u8; 6]> {
    for line in arp.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // IP address, HW type, Flags, HW address, Mask, Device
        if f.len() >= 6 && f[0].parse() == Ok(ip) && f[5] == interface {
            let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap_or(0);
            if flags & 0x2 != 0 {
                return parse_mac(f[3]);
            }
        }
    }
    None
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn read(path: &str) -> Result<String, SynError> {
    std::fs::read_to_string(path)
        .map_err(|e| SynError::Interface(format!("cannot read {path}: {e}")))
}

/// The first IPv4 address of `interface`.
fn interface_ipv4(interface: &str) -> Option<Ipv4Addr> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free with freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = addrs;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if !ifa.ifa_addr.is_null()
            && name.to_bytes() == interface.as_bytes()
            // SAFETY: ifa_addr is non-null and points at a sockaddr.
            && unsafe { (*ifa.ifa_addr).sa_family } as i32 == libc::AF_INET
        {
            // SAFETY: the family says it is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            break;
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: addrs came from getifaddrs.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

/// Works out the egress for probes to `first_target`, each part overridable.
pub fn resolve(
    first_target: Ipv4Addr,
    interface: Option<&str>,
    source_ip: Option<Ipv4Addr>,
    gateway_mac: Option<[u8; 6]>,
) -> Result<Egress, SynError> {
    let route = if first_target.is_loopback() {
        None
    } else {
        route_for(&read("/proc/net/route")?, first_target)
    };
    let (interface, gateway) = match (interface, route) {
        // A named interface keeps the route's gateway when the route uses it.
        (Some(i), route) => (
            i.to_string(),
            route.filter(|(ri, _)| ri == i).and_then(|(_, g)| g),
        ),
        (None, _) if first_target.is_loopback() => ("lo".to_string(), None),
        (None, Some(route)) => route,
        (None, None) => {
            return Err(SynError::Interface(format!(
                "no route to {first_target}: name the interface with --interface"
            )))
        }
    };
    let class = Path::new("/sys/class/net").join(&interface);
    let kind: u32 = std::fs::read_to_string(class.join("type"))
        .map_err(|_| SynError::Interface(format!("no interface named {interface:?}")))?
        .trim()
        .parse()
        .unwrap_or(0);
    let loopback = kind == ARPHRD_LOOPBACK;
    if !loopback && kind != ARPHRD_ETHER {
        return Err(SynError::Interface(format!(
            "{interface} is not an Ethernet or loopback interface (type {kind}); SYN mode needs one"
        )));
    }
    let src_mac = if loopback {
        [0; 6]
    } else {
        parse_mac(&std::fs::read_to_string(class.join("address")).unwrap_or_default())
            .ok_or_else(|| SynError::Interface(format!("cannot read the MAC of {interface}")))?
    };
    let src_ip = match source_ip {
        Some(ip) => ip,
        None if loopback && first_target.is_loopback() => Ipv4Addr::LOCALHOST,
        None => interface_ipv4(&interface).ok_or_else(|| {
            SynError::Interface(format!(
                "{interface} has no IPv4 address: give one with --source-ip"
            ))
        })?,
    };
    let dst_mac = match (gateway_mac, loopback) {
        (Some(m), _) => m,
        (None, true) => [0; 6],
        (None, false) => {
            let Some(gw) = gateway else {
                return Err(SynError::Interface(format!(
                    "targets on the link of {interface} have no single next hop: give the MAC to send to with --gateway-mac"
                )));
            };
            neighbour_mac(&read("/proc/net/arp")?, gw, &interface).ok_or_else(|| {
                SynError::Interface(format!(
                    "the gateway {gw} on {interface} has no resolved MAC in /proc/net/arp: give it with --gateway-mac"
                ))
            })?
        }
    };
    Ok(Egress {
        interface,
        link: LinkAddrs {
            src_mac,
            dst_mac,
            src_ip,
        },
        loopback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
sv0\t000012C6\t020013C6\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
";

    #[test]
    fn longest_prefix_wins() {
        assert_eq!(
            route_for(ROUTES, "198.18.7.9".parse().unwrap()),
            Some(("sv0".into(), Some("198.19.0.2".parse().unwrap())))
        );
        assert_eq!(
            route_for(ROUTES, "192.168.0.7".parse().unwrap()),
            Some(("eth0".into(), None))
        );
        assert_eq!(
            route_for(ROUTES, "203.0.113.1".parse().unwrap()),
            Some(("eth0".into(), Some("192.168.0.1".parse().unwrap())))
        );
        assert_eq!(
            route_for(
                &ROUTES[..ROUTES.find("eth0").unwrap()],
                "192.0.2.4".parse().unwrap()
            ),
            None
        );
    }

    #[test]
    fn arp_entries_must_be_complete() {
        let arp = "IP address       HW type     Flags       HW address            Mask     Device
198.19.0.2       0x1         0x6         aa:bb:cc:dd:ee:0f     *        sv0
198.19.0.3       0x1         0x0         00:00:00:00:00:00     *        sv0
";
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(
            neighbour_mac(arp, ip("198.19.0.2"), "sv0"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f])
        );
        assert_eq!(neighbour_mac(arp, ip("198.19.0.3"), "sv0"), None);
        assert_eq!(neighbour_mac(arp, ip("198.19.0.2"), "eth0"), None);
        assert_eq!(parse_mac("aa:bb"), None);
    }
}
