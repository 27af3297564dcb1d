//! Per-packet fingerprints of scanners and of backscatter.
//!
//! A fingerprint here is a property of one packet. Whether a *source* is
//! flagged is decided by the telescope from how many of its SYNs match
//! (see `iotscope-telescope`), because a 16-bit field matches by chance
//! once in 65,536 packets.

use crate::class::Class;
use crate::packet::{proto, Addr, Packet};

/// Bit for [`is_mirai`] in [`matches`]' result.
pub const MIRAI: u8 = 1;
/// Bit for [`is_zmap`].
pub const ZMAP: u8 = 2;
/// Bit for [`is_masscan`].
pub const MASSCAN: u8 = 4;
/// Bit for [`is_backscatter`].
pub const BACKSCATTER: u8 = 8;

/// Mirai's scanner (scanner.c) sets the SYN's sequence number to the target
/// IPv4 address.
#[inline]
pub fn is_mirai(p: &Packet) -> bool {
    matches!((p.class, p.dst), (Class::TcpSyn, Addr::V4(dst)) if p.tcp_seq == dst)
}

/// ZMap before 4.1 sends every probe with IPv4 ID 54321.
#[inline]
pub fn is_zmap(p: &Packet) -> bool {
    p.class == Class::TcpSyn && matches!(p.dst, Addr::V4(_)) && p.ip_id == 54321
}

/// masscan (templ-pkt.c) sets the IPv4 ID to
/// `(dst_ip ^ dst_port ^ seq) & 0xffff`.
#[inline]
pub fn is_masscan(p: &Packet) -> bool {
    match (p.class, p.dst) {
        (Class::TcpSyn, Addr::V4(dst)) => {
            p.ip_id == ((dst ^ p.dst_port as u32 ^ p.tcp_seq) & 0xffff) as u16
        }
        _ => false,
    }
}

/// Replies of DDoS victims to spoofed sources that happen to lie in the
/// darknet: SYN/ACK and RST segments; ICMP echo reply (0), destination
/// unreachable (3), source quench (4), redirect (5), time exceeded (11) and
/// parameter problem (12), and their ICMPv6 counterparts (1 destination
/// unreachable, 2 packet too big, 3 time exceeded, 4 parameter problem,
/// 129 echo reply, 137 redirect); UDP from source port 53 (DNS answers).
#[inline]
pub fn is_backscatter(p: &Packet) -> bool {
    match p.class {
        Class::TcpSynack | Class::TcpRst => true,
        Class::Icmp => match (p.protocol, p.icmp_type) {
            (proto::ICMP, Some(t)) => matches!(t, 0 | 3 | 4 | 5 | 11 | 12),
            (proto::ICMPV6, Some(t)) => matches!(t, 1 | 2 | 3 | 4 | 129 | 137),
            _ => false,
        },
        Class::Udp => p.has_ports && p.src_port == 53,
        _ => false,
    }
}

/// All fingerprints of one packet as a bit set of [`MIRAI`], [`ZMAP`],
/// [`MASSCAN`] and [`BACKSCATTER`].
#[inline]
pub fn matches(p: &Packet) -> u8 {
    let mut bits = 0;
    if p.class == Class::TcpSyn {
        if let Addr::V4(dst) = p.dst {
            bits |= (p.tcp_seq == dst) as u8 * MIRAI;
            bits |= (p.ip_id == 54321) as u8 * ZMAP;
            bits |= (p.ip_id == ((dst ^ p.dst_port as u32 ^ p.tcp_seq) & 0xffff) as u16) as u8
                * MASSCAN;
        }
    } else if is_backscatter(p) {
        bits |= BACKSCATTER;
    }
    bits
}
