//! The eleven packet classes, as NICTER colours darknet traffic.
//!
//! Invariant: every frame the telescope analyses falls in exactly one class
//! or is counted as malformed; the classes partition the analysed packets.

use serde::Serialize;

/// Kind of a packet, from its IP protocol and (for TCP) its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Class {
    /// TCP, `flags & 0x3f == 0x02`.
    TcpSyn = 0,
    /// TCP, `flags & 0x3f == 0x12`.
    TcpSynack = 1,
    /// TCP, `flags & 0x3f == 0x10`.
    TcpAck = 2,
    /// TCP, `flags & 0x3f` is 0x01 or 0x11.
    TcpFin = 3,
    /// TCP, `flags & 0x3f` is 0x04 or 0x14.
    TcpRst = 4,
    /// TCP, `flags & 0x3f` is 0x08 or 0x18.
    TcpPush = 5,
    /// Any other TCP flag combination, and non-first TCP fragments.
    TcpOther = 6,
    /// UDP.
    Udp = 7,
    /// ICMP for IPv4 and ICMPv6.
    Icmp = 8,
    /// IP with another transport protocol (GRE, ESP, SCTP, ...).
    OtherIp = 9,
    /// A frame with no IP layer (ARP, unknown link types, ...).
    NonIp = 10,
}

/// Number of classes; class values are `0..CLASS_COUNT`.
pub const CLASS_COUNT: usize = 11;

/// All classes in their numeric order (the order of reports).
pub const ALL_CLASSES: [Class; CLASS_COUNT] = [
    Class::TcpSyn,
    Class::TcpSynack,
    Class::TcpAck,
    Class::TcpFin,
    Class::TcpRst,
    Class::TcpPush,
    Class::TcpOther,
    Class::Udp,
    Class::Icmp,
    Class::OtherIp,
    Class::NonIp,
];

/// Lookup table from `flags & 0x3f` to class, built at compile time.
const TCP_CLASS_BY_FLAGS: [Class; 64] = {
    let mut table = [Class::TcpOther; 64];
    table[0x02] = Class::TcpSyn;
    table[0x12] = Class::TcpSynack;
    table[0x10] = Class::TcpAck;
    table[0x01] = Class::TcpFin;
    table[0x11] = Class::TcpFin;
    table[0x04] = Class::TcpRst;
    table[0x14] = Class::TcpRst;
    table[0x08] = Class::TcpPush;
    table[0x18] = Class::TcpPush;
    table
};

impl Class {
    /// Class of a TCP segment from its flags byte. ECE and CWR (0xc0) are
    /// ignored, so an ECN-setup SYN is still a SYN.
    #[inline]
    pub fn from_tcp_flags(flags: u8) -> Class {
        TCP_CLASS_BY_FLAGS[(flags & 0x3f) as usize]
    }

    /// The stable name used in JSON, CSV and the store.
    pub fn name(self) -> &'static str {
        match self {
            Class::TcpSyn => "tcp_syn",
            Class::TcpSynack => "tcp_synack",
            Class::TcpAck => "tcp_ack",
            Class::TcpFin => "tcp_fin",
            Class::TcpRst => "tcp_rst",
            Class::TcpPush => "tcp_push",
            Class::TcpOther => "tcp_other",
            Class::Udp => "udp",
            Class::Icmp => "icmp",
            Class::OtherIp => "other_ip",
            Class::NonIp => "non_ip",
        }
    }

    /// Inverse of [`Class::name`].
    pub fn from_name(name: &str) -> Option<Class> {
        ALL_CLASSES.iter().copied().find(|c| c.name() == name)
    }

    /// Index into per-class arrays.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_table_matches_the_issue_rules() {
        for flags in 0u16..=255 {
            let f = flags as u8;
            let expected = match f & 0x3f {
                0x02 => Class::TcpSyn,
                0x12 => Class::TcpSynack,
                0x10 => Class::TcpAck,
                0x01 | 0x11 => Class::TcpFin,
                0x04 | 0x14 => Class::TcpRst,
                0x08 | 0x18 => Class::TcpPush,
                _ => Class::TcpOther,
            };
            assert_eq!(Class::from_tcp_flags(f), expected, "flags {f:#04x}");
        }
    }

    #[test]
    fn names_round_trip() {
        for c in ALL_CLASSES {
            assert_eq!(Class::from_name(c.name()), Some(c));
            assert_eq!(ALL_CLASSES[c.index()], c);
        }
        assert_eq!(Class::from_name("tcp"), None);
    }
}
