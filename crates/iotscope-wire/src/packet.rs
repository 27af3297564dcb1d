//! Decoding one captured frame down to the fields the telescope needs.
//!
//! Owns: link layers (Ethernet with 802.1Q/802.1ad tags, PPPoE and MPLS,
//! raw IP, Linux SLL/SLL2, BSD NULL/LOOP, PPP, Cisco HDLC, Linux NFLOG), IPv4
//! (fragments), IPv6 (extension headers, fragments), and the first bytes of
//! TCP, UDP and ICMP.
//!
//! Invariants: [`decode`] never panics and never allocates, whatever the
//! bytes; every read is bounds-checked against the captured length. Frames cut
//! short by the capture's snap length are decoded as far as the class needs
//! (TCP up to its flags byte, UDP up to its ports, ICMP up to its type), so a
//! telescope recorded with a small snaplen still classifies every packet.

use crate::class::Class;
use crate::link::LinkType;

/// An IP address in the compact form used on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Addr {
    /// IPv4, host byte order.
    V4(u32),
    /// IPv6, host byte order.
    V6(u128),
}

impl Addr {
    /// The standard library form, for display and storage.
    pub fn to_ip(self) -> std::net::IpAddr {
        match self {
            Addr::V4(a) => std::net::IpAddr::V4(a.into()),
            Addr::V6(a) => std::net::IpAddr::V6(a.into()),
        }
    }
}

impl From<std::net::IpAddr> for Addr {
    fn from(ip: std::net::IpAddr) -> Self {
        match ip {
            std::net::IpAddr::V4(v4) => Addr::V4(v4.into()),
            std::net::IpAddr::V6(v6) => Addr::V6(v6.into()),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_ip().fmt(f)
    }
}

/// IP protocol numbers we look inside.
pub mod proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// The decoded fields of one IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Class of the packet (never [`Class::NonIp`]).
    pub class: Class,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Transport protocol number (after IPv6 extension headers).
    pub protocol: u8,
    /// True when this is a non-first IP fragment: no transport header, no ports.
    pub later_fragment: bool,
    /// Source port (TCP/UDP first fragments only, else 0).
    pub src_port: u16,
    /// Destination port (TCP/UDP first fragments only, else 0).
    pub dst_port: u16,
    /// True when `src_port`/`dst_port` are meaningful.
    pub has_ports: bool,
    /// TCP flags byte (0 when not TCP).
    pub tcp_flags: u8,
    /// TCP sequence number (0 when not TCP).
    pub tcp_seq: u32,
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    /// ICMP or ICMPv6 type, when `class` is [`Class::Icmp`] and known.
    pub icmp_type: Option<u8>,
}

/// Why a frame could not be decoded. A closed set so it can be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// The link-layer header is cut short.
    TruncatedLink,
    /// The IP header is cut short.
    TruncatedIp,
    /// The IP version nibble disagrees with the link layer.
    BadIpVersion,
    /// IPv4 header length below 20 bytes or total length below the header.
    BadIpHeaderLength,
    /// IPv6 extension header chain cut short or too long.
    BadIpv6Extension,
    /// The transport header is cut before the fields we classify on.
    TruncatedTransport,
    /// TCP data offset below 5 words (20 bytes): an impossible header, as
    /// tshark ("Bogus TCP header length") and tcpdump ("bad hdr length") say.
    BadTcpHeaderLength,
}

impl Malformed {
    /// Stable reason label for counters.
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::TruncatedLink => "truncated_link",
            Malformed::TruncatedIp => "truncated_ip",
            Malformed::BadIpVersion => "bad_ip_version",
            Malformed::BadIpHeaderLength => "bad_ip_header_length",
            Malformed::BadIpv6Extension => "bad_ipv6_extension",
            Malformed::TruncatedTransport => "truncated_transport",
            Malformed::BadTcpHeaderLength => "bad_tcp_header_length",
        }
    }
}

/// What a frame decoded to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// An IP packet.
    Ip(Packet),
    /// No IP layer: ARP, LLDP, an unknown link type or ethertype.
    NonIp,
    /// Headers that are cut short or impossible.
    Malformed(Malformed),
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;

/// At most this many MPLS labels are followed (real stacks carry two to
/// four); a deeper stack is `truncated_link`.
pub const MAX_MPLS_LABELS: usize = 16;

/// At most this many VLAN tags (802.1Q, 802.1ad, the old 0x9100) are
/// followed; a ninth is `truncated_link` rather than looped over
/// (attacker-controlled input; real stacks carry one or two).
pub const MAX_VLAN_TAGS: usize = 8;

/// At most this many IPv6 extension headers are followed; more is
/// `bad_ipv6_extension`. RFC 8200 allows each header once (destination
/// options twice), but real traffic nests more: IDS-evasion probes chain
/// atomic fragment headers, and libpcap's own test capture has about 130.
/// Each header is at least 8 bytes, so the walk is bounded by the frame.
pub const MAX_IPV6_EXTENSIONS: usize = 256;

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes one frame of the given link type.
///
/// ```
/// use iotscope_wire::{decode, Decoded, LinkType, Class};
/// // A raw IPv4 TCP SYN to port 23 whose sequence number is its destination.
/// let mut p = vec![0x45, 0, 0, 40, 0x12, 0x34, 0, 0, 64, 6, 0, 0,
///                  203, 0, 113, 9,  198, 18, 0, 5];
/// p.extend_from_slice(&[0x9c, 0x40, 0, 23, 198, 18, 0, 5, 0, 0, 0, 0, 0x50, 0x02, 0x16, 0xd0, 0, 0, 0, 0]);
/// match decode(LinkType::RawIp, &p) {
///     Decoded::Ip(pkt) => {
///         assert_eq!(pkt.class, Class::TcpSyn);
///         assert_eq!(pkt.dst_port, 23);
///         assert!(iotscope_wire::fingerprint::is_mirai(&pkt));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[inline]
pub fn decode(link: LinkType, frame: &[u8]) -> Decoded {
    let (ethertype, offset) = match link {
        LinkType::Ethernet => match ethernet(frame) {
            Ok(v) => v,
            Err(d) => return d,
        },
        LinkType::RawIp => {
            return match frame.first() {
                Some(b) if b >> 4 == 4 => ipv4(frame, 0),
                Some(b) if b >> 4 == 6 => ipv6(frame, 0),
                Some(_) => Decoded::Malformed(Malformed::BadIpVersion),
                None => Decoded::Malformed(Malformed::TruncatedIp),
            }
        }
        LinkType::Ipv4 => return ipv4(frame, 0),
        LinkType::Ipv6 => return ipv6(frame, 0),
        LinkType::LinuxSll => match be16(frame, 14) {
            Some(t) => (t, 16),
            None => return Decoded::Malformed(Malformed::TruncatedLink),
        },
        LinkType::LinuxSll2 => match be16(frame, 0) {
            Some(t) if frame.len() >= 20 => (t, 20),
            _ => return Decoded::Malformed(Malformed::TruncatedLink),
        },
        LinkType::Null | LinkType::Loop => {
            let Some(raw) = frame.get(0..4) else {
                return Decoded::Malformed(Malformed::TruncatedLink);
            };
            let raw: [u8; 4] = raw.try_into().expect("four bytes");
            // NULL stores the address family in the capturing host's byte
            // order, which the file does not record; LOOP uses network order.
            // AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD,
            // OpenBSD), 28 (FreeBSD), 30 (macOS).
            let family = match link {
                LinkType::Loop => u32::from_be_bytes(raw),
                _ => {
                    let le = u32::from_le_bytes(raw);
                    if le < 256 {
                        le
                    } else {
                        u32::from_be_bytes(raw)
                    }
                }
            };
            match family {
                2 => (ETHERTYPE_IPV4, 4),
                10 | 24 | 28 | 30 => (ETHERTYPE_IPV6, 4),
                _ => return Decoded::NonIp,
            }
        }
        LinkType::Ppp => {
            // RFC 1662 framing: address 0xff and control 0x03 unless
            // compressed away (ACFC); then the PPP protocol.
            let at = if frame.starts_with(&[0xff, 0x03]) {
                2
            } else {
                0
            };
            match ppp_protocol(frame, at) {
                Ok(v) => v,
                Err(d) => return d,
            }
        }
        LinkType::CiscoHdlc => match be16(frame, 2) {
            Some(t) => (t, 4),
            None => return Decoded::Malformed(Malformed::TruncatedLink),
        },
        LinkType::Nflog => return nflog(frame),
        LinkType::Unknown(_) => return Decoded::NonIp,
    };
    network(frame, ethertype, offset)
}

/// The network layer named by an Ethernet type at `offset`.
#[inline(always)]
fn network(frame: &[u8], ethertype: u16, offset: usize) -> Decoded {
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(frame, offset),
        ETHERTYPE_IPV6 => ipv6(frame, offset),
        ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => mpls(frame, offset),
        _ => Decoded::NonIp,
    }
}

/// An MPLS label stack (RFC 3032): 4-byte entries up to the one with the
/// bottom-of-stack bit. The payload's type is not in the stack; as
/// tshark does, a first nibble of 4 or 6 is IP, and 0 is a pseudowire
/// control word (RFC 4385) followed by an Ethernet frame (RFC 4448), whose
/// IPv4 or IPv6 is decoded (one level: MPLS inside it is `non_ip`);
/// anything else is `non_ip`.
#[cold]
fn mpls(frame: &[u8], mut offset: usize) -> Decoded {
    for _ in 0..MAX_MPLS_LABELS {
        let Some(entry) = frame.get(offset..offset + 4) else {
            return Decoded::Malformed(Malformed::TruncatedLink);
        };
        offset += 4;
        if entry[2] & 1 == 1 {
            return match frame.get(offset).map(|b| b >> 4) {
                Some(4) => ipv4(frame, offset),
                Some(6) => ipv6(frame, offset),
                Some(0) => {
                    let inner = frame.get(offset + 4..).unwrap_or(&[]);
                    match ethernet(inner) {
                        Ok((ETHERTYPE_IPV4, at)) => ipv4(inner, at),
                        Ok((ETHERTYPE_IPV6, at)) => ipv6(inner, at),
                        Ok(_) => Decoded::NonIp,
                        Err(d) => d,
                    }
                }
                Some(_) => Decoded::NonIp,
                None => Decoded::Malformed(Malformed::TruncatedIp),
            };
        }
    }
    Decoded::Malformed(Malformed::TruncatedLink)
}

/// The PPP protocol at `at` (two bytes, or one when its first byte is odd,
/// RFC 1661 6.5) as an Ethernet type and the payload offset; protocols
/// other than IPv4 (0x21) and IPv6 (0x57) are `non_ip`.
#[inline(always)]
fn ppp_protocol(frame: &[u8], at: usize) -> Result<(u16, usize), Decoded> {
    let first = *frame
        .get(at)
        .ok_or(Decoded::Malformed(Malformed::TruncatedLink))?;
    let (protocol, offset) = if first & 1 == 1 {
        (first as u16, at + 1)
    } else {
        (
            be16(frame, at).ok_or(Decoded::Malformed(Malformed::TruncatedLink))?,
            at + 2,
        )
    };
    match protocol {
        0x0021 => Ok((ETHERTYPE_IPV4, offset)),
        0x0057 => Ok((ETHERTYPE_IPV6, offset)),
        _ => Err(Decoded::NonIp),
    }
}

/// NFLOG TLV type of the packet payload (NFULA_PAYLOAD).
const NFULA_PAYLOAD: u16 = 9;

/// A Linux NFLOG record (tcpdump's `nflog` link type, libpcap
/// pcap-linktype(7)): family (1 byte: AF_INET 2, AF_INET6 10), version,
/// resource id (2), then TLVs of (length, type) in the capturing host's
/// byte order, each padded to 4 bytes, the length counting the 4-byte
/// header. The IP packet is the NFULA_PAYLOAD TLV. Byte order: the one in
/// which the first TLV's length fits the frame (as Wireshark guesses).
#[cold]
fn nflog(frame: &[u8]) -> Decoded {
    let Some(&family) = frame.first() else {
        return Decoded::Malformed(Malformed::TruncatedLink);
    };
    if frame.len() < 4 {
        return Decoded::Malformed(Malformed::TruncatedLink);
    }
    let rd = |at: usize, le: bool| -> Option<u16> {
        let b = [*frame.get(at)?, *frame.get(at + 1)?];
        Some(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let fits = |le: bool| rd(4, le).is_some_and(|len| len >= 4 && 4 + len as usize <= frame.len());
    let le = fits(true) || !fits(false);
    let read16 = |at: usize| rd(at, le);
    let mut at = 4;
    // Each TLV is at least 4 bytes, so the walk ends with the frame.
    while at + 4 <= frame.len() {
        let (Some(len), Some(kind)) = (read16(at), read16(at + 2)) else {
            break;
        };
        let len = len as usize;
        if len < 4 || at + len > frame.len() {
            return Decoded::Malformed(Malformed::TruncatedLink);
        }
        // The type's top bit is NLA_F_NESTED; the low 15 bits name it.
        if kind & 0x7fff == NFULA_PAYLOAD {
            let payload = &frame[at + 4..at + len];
            return match family {
                2 => ipv4(payload, 0),
                10 => ipv6(payload, 0),
                _ => Decoded::NonIp,
            };
        }
        at += (len + 3) & !3;
    }
    Decoded::NonIp
}

/// Walks the Ethernet header and its tags; returns (ethertype, payload offset).
#[inline(always)]
fn ethernet(frame: &[u8]) -> Result<(u16, usize), Decoded> {
    let mut ethertype = be16(frame, 12).ok_or(Decoded::Malformed(Malformed::TruncatedLink))?;
    let mut offset = 14;
    // One turn per tag, and one more to read what follows the last.
    for _ in 0..=MAX_VLAN_TAGS {
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                ethertype =
                    be16(frame, offset + 2).ok_or(Decoded::Malformed(Malformed::TruncatedLink))?;
                offset += 4;
            }
            ETHERTYPE_PPPOE_SESSION => {
                // 6-byte PPPoE header, then the PPP protocol: two bytes, or
                // one when compressed (RFC 1661 6.5: an odd first byte is a
                // whole protocol number; access concentrators negotiate it).
                return ppp_protocol(frame, offset + 6);
            }
            _ => return Ok((ethertype, offset)),
        }
    }
    Err(Decoded::Malformed(Malformed::TruncatedLink))
}

#[inline(always)]
fn ipv4(frame: &[u8], at: usize) -> Decoded {
    let Some(h) = frame.get(at..at + 20) else {
        return Decoded::Malformed(Malformed::TruncatedIp);
    };
    if h[0] >> 4 != 4 {
        return Decoded::Malformed(Malformed::BadIpVersion);
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    let total_len = u16::from_be_bytes([h[2], h[3]]) as usize;
    // Total length 0 appears in captures of TCP-segmentation-offloaded
    // packets; treat it as "unknown" rather than malformed.
    if ihl < 20 || (total_len != 0 && total_len < ihl) {
        return Decoded::Malformed(Malformed::BadIpHeaderLength);
    }
    if frame.len() < at + ihl {
        return Decoded::Malformed(Malformed::TruncatedIp);
    }
    let ip_id = u16::from_be_bytes([h[4], h[5]]);
    let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    let protocol = h[9];
    let src = Addr::V4(u32::from_be_bytes([h[12], h[13], h[14], h[15]]));
    let dst = Addr::V4(u32::from_be_bytes([h[16], h[17], h[18], h[19]]));
    // Ethernet pads short frames; the transport ends where IP says it does.
    let end = if total_len == 0 {
        frame.len()
    } else {
        frame.len().min(at + total_len)
    };
    let l4 = &frame[at + ihl..end];
    transport(src, dst, protocol, ip_id, frag_offset != 0, l4, false)
}

#[inline(always)]
fn ipv6(frame: &[u8], at: usize) -> Decoded {
    let Some(h) = frame.get(at..at + 40) else {
        return Decoded::Malformed(Malformed::TruncatedIp);
    };
    if h[0] >> 4 != 6 {
        return Decoded::Malformed(Malformed::BadIpVersion);
    }
    let payload_len = u16::from_be_bytes([h[4], h[5]]) as usize;
    let src = Addr::V6(u128::from_be_bytes(h[8..24].try_into().expect("16 bytes")));
    let dst = Addr::V6(u128::from_be_bytes(h[24..40].try_into().expect("16 bytes")));
    // Payload length 0 means a jumbogram or an offloaded capture.
    let end = if payload_len == 0 {
        frame.len()
    } else {
        frame.len().min(at + 40 + payload_len)
    };
    let mut next = h[6];
    let mut offset = at + 40;
    let mut later_fragment = false;
    // One turn per extension header, and one more for the transport.
    for _ in 0..=MAX_IPV6_EXTENSIONS {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let (Some(&nh), Some(&len)) = (frame.get(offset), frame.get(offset + 1)) else {
                    return Decoded::Malformed(Malformed::BadIpv6Extension);
                };
                next = nh;
                offset += (len as usize + 1) * 8;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let (Some(&nh), Some(off)) = (frame.get(offset), be16(frame, offset + 2)) else {
                    return Decoded::Malformed(Malformed::BadIpv6Extension);
                };
                next = nh;
                later_fragment = off >> 3 != 0;
                offset += 8;
                if later_fragment {
                    break;
                }
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                let (Some(&nh), Some(&len)) = (frame.get(offset), frame.get(offset + 1)) else {
                    return Decoded::Malformed(Malformed::BadIpv6Extension);
                };
                next = nh;
                offset += (len as usize + 2) * 4;
            }
            _ => {
                let l4 = frame.get(offset..end.max(offset)).unwrap_or(&[]);
                if offset > frame.len() {
                    return Decoded::Malformed(Malformed::BadIpv6Extension);
                }
                return transport(src, dst, next, 0, later_fragment, l4, true);
            }
        }
    }
    if later_fragment {
        return transport(src, dst, next, 0, true, &[], true);
    }
    Decoded::Malformed(Malformed::BadIpv6Extension)
}

#[inline(always)]
fn transport(
    src: Addr,
    dst: Addr,
    protocol: u8,
    ip_id: u16,
    later_fragment: bool,
    l4: &[u8],
    v6: bool,
) -> Decoded {
    let mut p = Packet {
        class: Class::OtherIp,
        src,
        dst,
        protocol,
        later_fragment,
        src_port: 0,
        dst_port: 0,
        has_ports: false,
        tcp_flags: 0,
        tcp_seq: 0,
        ip_id,
        icmp_type: None,
    };
    let icmp_proto = if v6 { proto::ICMPV6 } else { proto::ICMP };
    match protocol {
        proto::TCP => {
            if later_fragment {
                p.class = Class::TcpOther;
                return Decoded::Ip(p);
            }
            // Up to and including the flags byte (offset 13).
            if l4.len() < 14 {
                return Decoded::Malformed(Malformed::TruncatedTransport);
            }
            p.src_port = u16::from_be_bytes([l4[0], l4[1]]);
            p.dst_port = u16::from_be_bytes([l4[2], l4[3]]);
            p.has_ports = true;
            if l4[12] >> 4 < 5 {
                return Decoded::Malformed(Malformed::BadTcpHeaderLength);
            }
            p.tcp_seq = be32(l4, 4).unwrap_or(0);
            p.tcp_flags = l4[13];
            p.class = Class::from_tcp_flags(p.tcp_flags);
        }
        proto::UDP => {
            p.class = Class::Udp;
            if !later_fragment {
                if l4.len() < 4 {
                    return Decoded::Malformed(Malformed::TruncatedTransport);
                }
                p.src_port = u16::from_be_bytes([l4[0], l4[1]]);
                p.dst_port = u16::from_be_bytes([l4[2], l4[3]]);
                p.has_ports = true;
            }
        }
        x if x == icmp_proto => {
            p.class = Class::Icmp;
            if !later_fragment {
                match l4.first() {
                    Some(&t) => p.icmp_type = Some(t),
                    None => return Decoded::Malformed(Malformed::TruncatedTransport),
                }
            }
        }
        _ => {}
    }
    Decoded::Ip(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint;
    use etherparse::{IpNumber, PacketBuilder};
    use proptest::prelude::*;

    const SRC: [u8; 4] = [203, 0, 113, 7];
    const DST: [u8; 4] = [198, 18, 3, 4];

    /// The raw IPv4 SYN inside [`eth_syn`].
    fn ip_syn() -> Vec<u8> {
        eth_syn(1, 2, 23)[14..].to_vec()
    }

    fn class_of(d: Decoded) -> Result<Class, &'static str> {
        match d {
            Decoded::Ip(p) => Ok(p.class),
            Decoded::NonIp => Err("non_ip"),
            Decoded::Malformed(m) => Err(m.reason()),
        }
    }

    #[test]
    fn chains_are_followed_to_their_documented_limits_and_no_further() {
        let tagged = |tags: usize| {
            let mut f = vec![0u8; 12];
            for _ in 0..tags {
                f.extend_from_slice(&[0x81, 0, 0, 7]);
            }
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&ip_syn());
            f
        };
        assert_eq!(
            class_of(decode(LinkType::Ethernet, &tagged(MAX_VLAN_TAGS))),
            Ok(Class::TcpSyn)
        );
        assert_eq!(
            class_of(decode(LinkType::Ethernet, &tagged(MAX_VLAN_TAGS + 1))),
            Err("truncated_link")
        );
        let ext = |n: usize| {
            let mut p = vec![0x60, 0, 0, 0, 0, 0, if n == 0 { 17 } else { 60 }, 64];
            p.extend_from_slice(&[0; 32]);
            for i in 0..n {
                p.extend_from_slice(&[if i + 1 == n { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
            }
            p.extend_from_slice(&[0, 1, 0, 53, 0, 8, 0, 0]);
            p
        };
        assert_eq!(
            class_of(decode(LinkType::RawIp, &ext(MAX_IPV6_EXTENSIONS))),
            Ok(Class::Udp)
        );
        assert_eq!(
            class_of(decode(LinkType::RawIp, &ext(MAX_IPV6_EXTENSIONS + 1))),
            Err("bad_ipv6_extension")
        );
        let labels = |n: usize| {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&[0x88, 0x47]);
            for i in 0..n {
                f.extend_from_slice(&[0, 0x10, (i + 1 == n) as u8, 64]);
            }
            f.extend_from_slice(&ip_syn());
            f
        };
        assert_eq!(
            class_of(decode(LinkType::Ethernet, &labels(MAX_MPLS_LABELS))),
            Ok(Class::TcpSyn)
        );
        assert_eq!(
            class_of(decode(LinkType::Ethernet, &labels(MAX_MPLS_LABELS + 1))),
            Err("truncated_link")
        );
        // An Ethernet pseudowire (control word 0) carrying IP is decoded;
        // one carrying something else is not IP.
        let mut pw = labels(1)[..18].to_vec();
        pw.extend_from_slice(&[0, 0, 0, 0]);
        let mut arp = pw.clone();
        pw.extend_from_slice(&eth_syn(1, 2, 23));
        assert_eq!(class_of(decode(LinkType::Ethernet, &pw)), Ok(Class::TcpSyn));
        arp.extend_from_slice(&[0u8; 12]);
        arp.extend_from_slice(&[0x08, 0x06, 0, 1]);
        assert_eq!(class_of(decode(LinkType::Ethernet, &arp)), Err("non_ip"));
    }

    #[test]
    fn tcp_header_length_below_twenty_bytes_is_malformed() {
        let mut p = ip_syn();
        p[32] = 0x20; // data offset 2 words
        assert_eq!(
            class_of(decode(LinkType::RawIp, &p)),
            Err("bad_tcp_header_length")
        );
        p[32] = 0x50;
        assert_eq!(class_of(decode(LinkType::RawIp, &p)), Ok(Class::TcpSyn));
    }

    #[test]
    fn nflog_in_either_byte_order_and_ppp_in_every_framing() {
        let ip = ip_syn();
        for le in [true, false] {
            let put = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
            let mut f = vec![2, 0, 0, 1];
            f.extend_from_slice(&put(8));
            f.extend_from_slice(&put(1));
            f.extend_from_slice(&[8, 0, 3, 0]);
            f.extend_from_slice(&put(ip.len() as u16 + 4));
            f.extend_from_slice(&put(9));
            f.extend_from_slice(&ip);
            assert_eq!(
                class_of(decode(LinkType::Nflog, &f)),
                Ok(Class::TcpSyn),
                "le {le}"
            );
            // A TLV longer than the frame is cut, not read past.
            let cut = &f[..f.len() - 1];
            assert_eq!(
                class_of(decode(LinkType::Nflog, cut)),
                Err("truncated_link")
            );
        }
        for head in [
            &[0xff, 0x03, 0x00, 0x21][..],
            &[0xff, 0x03, 0x21],
            &[0x00, 0x21],
            &[0x21],
        ] {
            let f = [head, &ip].concat();
            assert_eq!(
                class_of(decode(LinkType::Ppp, &f)),
                Ok(Class::TcpSyn),
                "{head:?}"
            );
        }
        // LCP is not IP.
        assert_eq!(
            class_of(decode(LinkType::Ppp, &[0xff, 0x03, 0xc0, 0x21, 1])),
            Err("non_ip")
        );
    }

    fn eth_syn(seq: u32, ip_id: u16, dport: u16) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(SRC, DST, 50)
            .tcp(40000, dport, seq, 1024)
            .syn();
        let _ = &mut b;
        let mut out = Vec::new();
        b.write(&mut out, &[]).unwrap();
        // Set the IPv4 identification (etherparse writes 0).
        out[18..20].copy_from_slice(&ip_id.to_be_bytes());
        out
    }

    fn ip(d: Decoded) -> Packet {
        match d {
            Decoded::Ip(p) => p,
            other => panic!("expected IP, got {other:?}"),
        }
    }

    #[test]
    fn ethernet_syn_decodes_every_field() {
        let dst = u32::from_be_bytes(DST);
        let f = eth_syn(dst, 54321, 2323);
        let p = ip(decode(LinkType::Ethernet, &f));
        assert_eq!(p.class, Class::TcpSyn);
        assert_eq!(p.src, Addr::V4(u32::from_be_bytes(SRC)));
        assert_eq!(p.dst, Addr::V4(dst));
        assert_eq!((p.src_port, p.dst_port, p.has_ports), (40000, 2323, true));
        assert_eq!(p.tcp_seq, dst);
        assert_eq!(p.ip_id, 54321);
        let bits = fingerprint::matches(&p);
        assert_eq!(
            bits & (fingerprint::MIRAI | fingerprint::ZMAP),
            fingerprint::MIRAI | fingerprint::ZMAP
        );
    }

    #[test]
    fn masscan_formula() {
        let dst = u32::from_be_bytes(DST);
        let seq = 0xdead_beef;
        let id = ((dst ^ 8080 ^ seq) & 0xffff) as u16;
        let p = ip(decode(LinkType::Ethernet, &eth_syn(seq, id, 8080)));
        assert!(fingerprint::is_masscan(&p));
        let p = ip(decode(LinkType::Ethernet, &eth_syn(seq, id ^ 1, 8080)));
        assert!(!fingerprint::is_masscan(&p));
    }

    #[test]
    fn vlan_and_qinq_tags_are_skipped() {
        let f = eth_syn(1, 1, 23);
        for tags in [
            vec![0x8100u16],
            vec![0x88a8, 0x8100],
            vec![0x9100, 0x8100, 0x8100],
        ] {
            let mut g = f[..12].to_vec();
            for t in &tags {
                g.extend_from_slice(&t.to_be_bytes());
                g.extend_from_slice(&[0x00, 0x07]);
            }
            g.extend_from_slice(&f[12..]);
            let p = ip(decode(LinkType::Ethernet, &g));
            assert_eq!((p.class, p.dst_port), (Class::TcpSyn, 23), "tags {tags:x?}");
        }
    }

    #[test]
    fn cooked_and_loopback_link_types() {
        let f = eth_syn(1, 1, 23);
        let ip_part = &f[14..];
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&0x0800u16.to_be_bytes());
        sll.extend_from_slice(ip_part);
        assert_eq!(ip(decode(LinkType::LinuxSll, &sll)).dst_port, 23);
        let mut sll2 = 0x0800u16.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(ip_part);
        assert_eq!(ip(decode(LinkType::LinuxSll2, &sll2)).dst_port, 23);
        for header in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut null = header.to_vec();
            null.extend_from_slice(ip_part);
            assert_eq!(ip(decode(LinkType::Null, &null)).dst_port, 23);
        }
        let mut lo = 2u32.to_be_bytes().to_vec();
        lo.extend_from_slice(ip_part);
        assert_eq!(ip(decode(LinkType::Loop, &lo)).dst_port, 23);
        assert_eq!(ip(decode(LinkType::RawIp, ip_part)).dst_port, 23);
        assert_eq!(ip(decode(LinkType::Ipv4, ip_part)).dst_port, 23);
        assert_eq!(decode(LinkType::Unknown(147), ip_part), Decoded::NonIp);
    }

    #[test]
    fn arp_is_non_ip() {
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&0x0806u16.to_be_bytes());
        arp.extend_from_slice(&[0; 28]);
        assert_eq!(decode(LinkType::Ethernet, &arp), Decoded::NonIp);
    }

    #[test]
    fn ipv6_with_extension_headers_and_fragments() {
        let src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut out = Vec::new();
        PacketBuilder::ipv6(src, dst, 64)
            .udp(53, 5353)
            .write(&mut out, b"hello")
            .unwrap();
        let p = ip(decode(LinkType::RawIp, &out));
        assert_eq!((p.class, p.src_port, p.dst_port), (Class::Udp, 53, 5353));
        assert!(fingerprint::is_backscatter(&p));
        // Insert a hop-by-hop (8 bytes) and a first-fragment header.
        let mut ext = out[..40].to_vec();
        ext[6] = 0; // next: hop-by-hop
        ext.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]); // HBH -> fragment
        ext.extend_from_slice(&[17, 0, 0x00, 0x01, 0, 0, 0, 9]); // frag offset 0, M=1
        ext.extend_from_slice(&out[40..]);
        let plen = (ext.len() - 40) as u16;
        ext[4..6].copy_from_slice(&plen.to_be_bytes());
        let p = ip(decode(LinkType::RawIp, &ext));
        assert_eq!(
            (p.class, p.dst_port, p.later_fragment),
            (Class::Udp, 5353, false)
        );
        // A later fragment: offset 8 (units of 8 bytes): no ports.
        ext[40 + 8 + 2..40 + 8 + 4].copy_from_slice(&(8u16 << 3).to_be_bytes());
        let p = ip(decode(LinkType::RawIp, &ext));
        assert_eq!(
            (p.class, p.has_ports, p.later_fragment),
            (Class::Udp, false, true)
        );
    }

    #[test]
    fn ipv4_later_tcp_fragment_is_tcp_other_without_port() {
        let mut f = eth_syn(1, 1, 23);
        f[14 + 6..14 + 8].copy_from_slice(&100u16.to_be_bytes());
        let p = ip(decode(LinkType::Ethernet, &f));
        assert_eq!((p.class, p.has_ports), (Class::TcpOther, false));
    }

    #[test]
    fn icmp_types_and_backscatter() {
        for (t, back) in [(0u8, true), (3, true), (8, false), (11, true), (13, false)] {
            let mut out = Vec::new();
            PacketBuilder::ipv4(SRC, DST, 64)
                .icmpv4_raw(t, 0, [0; 4])
                .write(&mut out, &[])
                .unwrap();
            let p = ip(decode(LinkType::RawIp, &out));
            assert_eq!((p.class, p.icmp_type), (Class::Icmp, Some(t)));
            assert_eq!(fingerprint::is_backscatter(&p), back, "type {t}");
        }
    }

    #[test]
    fn other_ip_protocols() {
        let mut out = Vec::new();
        PacketBuilder::ipv4(SRC, DST, 64)
            .write(&mut out, IpNumber::GRE, &[0; 4])
            .unwrap();
        assert_eq!(ip(decode(LinkType::RawIp, &out)).class, Class::OtherIp);
    }

    #[test]
    fn truncated_and_impossible_headers_are_malformed() {
        let f = eth_syn(1, 1, 23);
        assert_eq!(
            decode(LinkType::Ethernet, &f[..10]),
            Decoded::Malformed(Malformed::TruncatedLink)
        );
        assert_eq!(
            decode(LinkType::Ethernet, &f[..30]),
            Decoded::Malformed(Malformed::TruncatedIp)
        );
        // Cut inside TCP before the flags byte.
        assert_eq!(
            decode(LinkType::Ethernet, &f[..14 + 20 + 10]),
            Decoded::Malformed(Malformed::TruncatedTransport)
        );
        // Cut right after the flags byte: still classifiable (snaplen).
        assert_eq!(
            ip(decode(LinkType::Ethernet, &f[..14 + 20 + 14])).class,
            Class::TcpSyn
        );
        let mut bad = f.clone();
        bad[14] = 0x44; // IHL 16 bytes
        assert_eq!(
            decode(LinkType::Ethernet, &bad),
            Decoded::Malformed(Malformed::BadIpHeaderLength)
        );
        let mut bad = f.clone();
        bad[14] = 0x65;
        assert_eq!(
            decode(LinkType::Ethernet, &bad),
            Decoded::Malformed(Malformed::BadIpVersion)
        );
        let mut bad = f.clone();
        bad[16..18].copy_from_slice(&10u16.to_be_bytes()); // total length < IHL
        assert_eq!(
            decode(LinkType::Ethernet, &bad),
            Decoded::Malformed(Malformed::BadIpHeaderLength)
        );
    }

    #[test]
    fn ethernet_padding_is_not_transport_data() {
        // A UDP packet whose IP total length stops before the 4 port bytes,
        // padded by Ethernet to 60 bytes: the padding must not be read as ports.
        let mut f = eth_syn(1, 1, 23);
        f.truncate(14 + 20);
        f[14 + 9] = 17;
        f[16..18].copy_from_slice(&22u16.to_be_bytes());
        f.resize(60, 0xaa);
        assert_eq!(
            decode(LinkType::Ethernet, &f),
            Decoded::Malformed(Malformed::TruncatedTransport)
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), link in 0u32..300) {
            let _ = decode(LinkType::from_linktype(link), &bytes);
        }

        #[test]
        fn decode_never_panics_on_mutated_ipv6(pos in 0usize..80, val in any::<u8>()) {
            let mut out = Vec::new();
            PacketBuilder::ipv6([1; 16], [2; 16], 64).tcp(1, 2, 3, 4).syn().write(&mut out, &[]).unwrap();
            if pos < out.len() { out[pos] = val; }
            let _ = decode(LinkType::RawIp, &out);
        }
    }
}
