//! Link-layer types as numbered in pcap and pcapng files (LINKTYPE_*).

/// The link layers [`crate::decode`] understands; anything else is
/// [`LinkType::Unknown`] and its frames count as `non_ip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_NULL (0): BSD loopback, family in host byte order.
    Null,
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_PPP (9): PPP, with or without the HDLC-like address and
    /// control bytes `ff 03` (RFC 1662), protocol compressed or not
    /// (RFC 1661 6.5); and LINKTYPE_PPP_HDLC (50), always with them.
    Ppp,
    /// LINKTYPE_RAW (101), and the historical DLT_RAW values 12 and 14.
    RawIp,
    /// LINKTYPE_C_HDLC (104): Cisco HDLC, a 4-byte header whose last two
    /// bytes are an Ethernet type.
    CiscoHdlc,
    /// LINKTYPE_LOOP (108): OpenBSD loopback, family in network byte order.
    Loop,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1.
    LinuxSll,
    /// LINKTYPE_NFLOG (239): Linux netfilter log (`iptables -j NFLOG`, the
    /// `nflog` interface): an address family, then TLVs, one of which holds
    /// the IP packet.
    Nflog,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
    /// Any other link type, by number.
    Unknown(u32),
}

impl LinkType {
    /// Maps a LINKTYPE_ number from a capture file.
    pub fn from_linktype(value: u32) -> LinkType {
        match value {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            9 | 50 => LinkType::Ppp,
            12 | 14 | 101 => LinkType::RawIp,
            104 => LinkType::CiscoHdlc,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            239 => LinkType::Nflog,
            276 => LinkType::LinuxSll2,
            other => LinkType::Unknown(other),
        }
    }

    /// The LINKTYPE_ number written to capture files.
    pub fn to_linktype(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Ppp => 9,
            LinkType::RawIp => 101,
            LinkType::CiscoHdlc => 104,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Nflog => 239,
            LinkType::LinuxSll2 => 276,
            LinkType::Unknown(v) => v,
        }
    }
}
