//! SYN probe frames and the validation of replies, pure functions on bytes.
//!
//! A probe carries its own proof: the sequence number and the source port
//! are a keyed hash of the target (address, port). A reply is ours only if
//! it comes from a target pair, to our address and to the source port that
//! pair was given, and acknowledges exactly that sequence number plus one.
//! The key is random per process, so nobody can forge replies in advance
//! and stray traffic to the scanner is never counted as a finding.

use std::hash::BuildHasher;
use std::net::Ipv4Addr;

/// Source ports used by probes: above Linux's default ephemeral range
/// (32768-60999), so the kernel's own connections (the banner grabs) never
/// share a port with a probe.
pub const SPORT_BASE: u16 = 61000;
/// Number of source ports in use.
pub const SPORT_SPAN: u16 = 65535 - SPORT_BASE;

/// Length of a probe frame: Ethernet 14 + IPv4 20 + TCP 20.
pub const FRAME_LEN: usize = 54;

/// The keyed validation function of one run.
#[derive(Clone, Debug)]
pub struct Cookie {
    key: std::collections::hash_map::RandomState,
}

impl Default for Cookie {
    fn default() -> Self {
        Cookie::new()
    }
}

impl Cookie {
    /// A fresh random key (SipHash keyed from the OS's random source).
    pub fn new() -> Cookie {
        Cookie {
            key: std::collections::hash_map::RandomState::new(),
        }
    }

    /// (sequence number, source port) of the probe to `ip:port`.
    #[inline]
    pub fn of(&self, ip: Ipv4Addr, port: u16) -> (u32, u16) {
        let h = self.key.hash_one((u32::from(ip), port));
        (
            h as u32,
            SPORT_BASE + ((h >> 32) % SPORT_SPAN as u64) as u16,
        )
    }
}

/// What a valid reply says about a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// SYN/ACK: the port is open.
    Open,
    /// RST: the port is closed.
    Refused,
}

/// A reply that passed validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Target address that answered.
    pub ip: Ipv4Addr,
    /// Target port that answered.
    pub port: u16,
    /// What it said.
    pub answer: Answer,
}

/// Addresses of the link a probe goes out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkAddrs {
    /// Our MAC (zero on loopback).
    pub src_mac: [u8; 6],
    /// Next hop's MAC (zero on loopback).
    pub dst_mac: [u8; 6],
    /// Our IPv4 address (the replies come back to it).
    pub src_ip: Ipv4Addr,
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn add_words(bytes: &[u8], mut sum: u32) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    sum
}

/// A frame template: everything that is the same for every probe.
pub fn template(link: &LinkAddrs) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&link.dst_mac);
    f[6..12].copy_from_slice(&link.src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64; // TTL
    ip[9] = 6; // TCP
    ip[12..16].copy_from_slice(&link.src_ip.octets());
    let tcp = &mut f[34..54];
    tcp[12] = 5 << 4; // data offset: 20 bytes, no options
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    f
}

/// The destination address [`fill`] wrote into `frame`.
pub fn destination(frame: &[u8; FRAME_LEN]) -> Ipv4Addr {
    Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33])
}

/// Fills `frame` (a copy of [`template`]) for the probe to `ip:port`.
#[inline]
pub fn fill(frame: &mut [u8; FRAME_LEN], cookie: &Cookie, ip: Ipv4Addr, port: u16) {
    let (seq, sport) = cookie.of(ip, port);
    // The IP ID is drawn from the cookie too: nothing in the header is
    // constant across probes except what the protocol fixes.
    let id = (seq >> 16) as u16 ^ seq as u16;
    frame[18..20].copy_from_slice(&id.to_be_bytes());
    frame[24..26].copy_from_slice(&[0, 0]);
    frame[30..34].copy_from_slice(&ip.octets());
    let ip_sum = fold(add_words(&frame[14..34], 0));
    frame[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    frame[34..36].copy_from_slice(&sport.to_be_bytes());
    frame[36..38].copy_from_slice(&port.to_be_bytes());
    frame[38..42].copy_from_slice(&seq.to_be_bytes());
    frame[50..52].copy_from_slice(&[0, 0]);
    // Pseudo-header: source, destination, protocol, TCP length.
    let mut sum = add_words(&frame[26..34], 6 + 20);
    sum = add_words(&frame[34..54], sum);
    frame[50..52].copy_from_slice(&fold(sum).to_be_bytes());
}

/// Checks a received Ethernet frame; `Some` only for a valid reply to one
/// of this run's probes. `is_target` says whether an address is one we
/// probe (a reply from anywhere else is never ours).
pub fn validate(
    frame: &[u8],
    our_ip: Ipv4Addr,
    cookie: &Cookie,
    is_target: impl Fn(Ipv4Addr) -> bool,
) -> Option<Reply> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    if ip[0] >> 4 != 4 || ip[9] != 6 {
        return None;
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    // Fragments never carry a whole reply header worth trusting.
    if ihl < 20 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return None;
    }
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    if dst != our_ip {
        return None;
    }
    let tcp = ip.get(ihl..ihl + 20)?;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
    if dport < SPORT_BASE {
        return None;
    }
    let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    let flags = tcp[13];
    let answer = match flags & 0x17 {
        0x12 => Answer::Open,           // SYN+ACK
        0x14 | 0x04 => Answer::Refused, // RST(+ACK)
        _ => return None,
    };
    let (seq, our_port) = cookie.of(src, sport);
    if our_port != dport || ack != seq.wrapping_add(1) || !is_target(src) {
        return None;
    }
    Some(Reply {
        ip: src,
        port: sport,
        answer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> LinkAddrs {
        LinkAddrs {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 19, 0, 1),
        }
    }

    #[test]
    fn probes_are_valid_syns_with_correct_checksums() {
        let cookie = Cookie::new();
        let mut f = template(&link());
        let target = Ipv4Addr::new(198, 18, 3, 4);
        fill(&mut f, &cookie, target, 2323);
        let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4")
        };
        assert_eq!(ip.header().destination_addr(), target);
        assert_eq!(ip.header().source_addr(), link().src_ip);
        let hdr = ip.header().to_header();
        assert_eq!(hdr.header_checksum, hdr.calc_header_checksum());
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("not TCP")
        };
        assert!(tcp.syn() && !tcp.ack() && !tcp.rst());
        assert_eq!(tcp.destination_port(), 2323);
        let (seq, sport) = cookie.of(target, 2323);
        assert_eq!((tcp.sequence_number(), tcp.source_port()), (seq, sport));
        let want = tcp
            .to_header()
            .calc_checksum_ipv4(&hdr, tcp.payload())
            .unwrap();
        assert_eq!(tcp.checksum(), want);
    }

    /// A reply frame as a target's kernel would send it.
    fn reply(from: Ipv4Addr, sport: u16, dport: u16, ack: u32, syn: bool, rst: bool) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]).ipv4(
            from.octets(),
            link().src_ip.octets(),
            64,
        );
        let mut t = b.tcp(sport, dport, 777, 64240);
        if syn {
            t = t.syn();
        }
        if rst {
            t = t.rst();
        }
        let t = t.ack(ack);
        let mut out = Vec::new();
        t.write(&mut out, &[]).unwrap();
        out
    }

    #[test]
    fn accepts_exactly_the_replies_to_our_probes() {
        let cookie = Cookie::new();
        let target = Ipv4Addr::new(198, 18, 3, 4);
        let (seq, sport) = cookie.of(target, 23);
        let yes = |_| true;
        let open = reply(target, 23, sport, seq.wrapping_add(1), true, false);
        assert_eq!(
            validate(&open, link().src_ip, &cookie, yes),
            Some(Reply {
                ip: target,
                port: 23,
                answer: Answer::Open
            })
        );
        let closed = reply(target, 23, sport, seq.wrapping_add(1), false, true);
        assert_eq!(
            validate(&closed, link().src_ip, &cookie, yes).map(|r| r.answer),
            Some(Answer::Refused)
        );
        // Wrong acknowledgement, wrong port, another key, not a target.
        let forged = reply(target, 23, sport, seq, true, false);
        assert_eq!(validate(&forged, link().src_ip, &cookie, yes), None);
        let other_port = reply(target, 24, sport, seq.wrapping_add(1), true, false);
        assert_eq!(validate(&other_port, link().src_ip, &cookie, yes), None);
        assert_eq!(validate(&open, link().src_ip, &Cookie::new(), yes), None);
        assert_eq!(validate(&open, link().src_ip, &cookie, |_| false), None);
        // Our own SYN seen on the way out is not a reply.
        let mut f = template(&link());
        fill(&mut f, &cookie, target, 23);
        assert_eq!(validate(&f, link().src_ip, &cookie, yes), None);
        // Truncated frames are ignored, never a panic.
        for n in 0..open.len() {
            let _ = validate(&open[..n], link().src_ip, &cookie, yes);
        }
    }
}
