//! What a blocklist entry may be. Feeds such as URLhaus and ThreatFox take
//! public submissions, so every value is hostile until it passes here: a
//! host must be a plain host name that blocks only itself (and, in the RPZ,
//! its subdomains), an address must name one host on the internet, and a
//! prefix must be narrow. Everything else is refused with a [`Refusal`]
//! that says why, at import (with the feed line) and again at export (an
//! older store may hold entries imported before these rules).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The widest IPv4 prefix an entry may name: a /8 (16.7 million
/// addresses). Anything wider (`0.0.0.0/0`, `128.0.0.0/1`) is refused:
/// no C&C list means a quarter of the internet.
pub const MIN_PREFIX_V4: u8 = 8;

/// The widest IPv6 prefix an entry may name: a /32, the smallest
/// allocation a regional registry makes to an ISP. `::/0` and the like are
/// refused.
pub const MIN_PREFIX_V6: u8 = 32;

/// The most entries one export may hold; a store with more is refused
/// whole ([`crate::ExportError::TooMany`]) instead of being cut short
/// silently. abuse.ch's online lists hold tens of thousands.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The longest host name written into a response-policy zone: the zone
/// holds `*.NAME` under the operator's zone name, and a DNS name is at
/// most 255 octets (RFC 1035 section 3.1), so 180 characters leave room
/// for a zone name of up to 70 (`*.` + name + `.` + zone + 2 octets of
/// length and root). A longer name would make the whole zone fail to load.
pub const MAX_RPZ_NAME: usize = 180;

/// Why a value may not be a blocklist entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a host name by the LDH rule of RFC 1035 section 2.3.1 as relaxed
    /// by RFC 1123 section 2.1 (letters, digits and inner hyphens; labels of
    /// 1-63 octets; at most 253 characters).
    #[error("not a host name: {0}")]
    NotAName(&'static str),
    /// A label that is an RPZ trigger or action name (`rpz-ip`,
    /// `rpz-client-ip`, `rpz-nsdname`, `rpz-nsip`, `rpz-passthru`,
    /// `rpz-drop`, `rpz-tcp-only`, and any other label beginning with
    /// `rpz-`, which the RPZ draft and BIND reserve): inside a zone it would
    /// turn the entry into a policy on clients, addresses or name servers.
    #[error("label {0:?} is an RPZ trigger or action name")]
    RpzLabel(String),
    /// A name written like an address (a numeric last label, or four
    /// numeric labels in a row as in `rpz-ip` and `in-addr.arpa` names).
    #[error("written like an address: {0}")]
    AddressShaped(&'static str),
    /// A top-level domain or public suffix (Mozilla's Public Suffix List,
    /// ICANN and private sections): blocking it blocks every name under it.
    #[error("{0:?} is a top-level domain or public suffix: it would block every name registered under it")]
    PublicSuffix(String),
    /// An address in a range that names no single host on the internet
    /// (IANA special-purpose registries, RFC 6890 and its updates).
    #[error("{addr} is {what}: it names no single host on the internet")]
    SpecialAddress {
        /// The address or prefix.
        addr: String,
        /// Which range (`loopback (RFC 1122)`, ...).
        what: &'static str,
    },
    /// A prefix wider than [`MIN_PREFIX_V4`] / [`MIN_PREFIX_V6`].
    #[error("/{len} is wider than /{min}, the widest prefix an entry may name")]
    PrefixTooWide {
        /// The prefix length given.
        len: u8,
        /// The bound for its family.
        min: u8,
    },
    /// `address/length` whose address has bits set past the length, or a
    /// length past 32 or 128.
    #[error("{0:?} is not a network (host bits set or length out of range)")]
    NotANetwork(String),
    /// A name longer than [`MAX_RPZ_NAME`] (RPZ export only).
    #[error("longer than {MAX_RPZ_NAME} characters, too long for a response-policy zone")]
    TooLongForRpz,
}

/// An address or a prefix, as the plain list, the nftables sets and the
/// `rpz-ip` names carry them. `len` is 32 or 128 for a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Network {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl Network {
    /// True for a single address (/32, /128).
    pub fn is_host(&self) -> bool {
        self.len == max_len(self.addr)
    }
}

impl fmt::Display for Network {
    /// The address alone for a single address, else `address/length`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

fn max_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// Ranges that name no single internet host, most specific first (IANA
/// IPv4 and IPv6 Special-Purpose Address Registries, RFC 6890). The
/// documentation ranges (RFC 5737, RFC 3849) are not here: examples and
/// tests use them.
const SPECIAL_V4: &[(Ipv4Addr, u8, &str)] = &[
    (
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        "the limited broadcast address (RFC 919)",
    ),
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\" (RFC 1122)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private (RFC 1918)"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared carrier-grade NAT space (RFC 6598)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (RFC 1122)"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local (RFC 3927)"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private (RFC 1918)"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private (RFC 1918)"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (RFC 5771)"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved (RFC 1112)"),
];

const SPECIAL_V6: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::UNSPECIFIED,
        128,
        "the unspecified address (RFC 4291)",
    ),
    (Ipv6Addr::LOCALHOST, 128, "loopback (RFC 4291)"),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        96,
        "IPv4-mapped (RFC 4291; list the IPv4 address)",
    ),
    (
        Ipv6Addr::UNSPECIFIED,
        96,
        "IPv4-compatible (deprecated, RFC 4291)",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local (RFC 4193)",
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "link-local (RFC 4291)",
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "multicast (RFC 4291)",
    ),
];

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn mask(width: u8, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        (u128::MAX << (128 - len as u32)) >> (128 - width as u32)
    }
}

/// Whether two prefixes of the same family share any address.
fn overlaps(a: u128, alen: u8, b: u128, blen: u8, width: u8) -> bool {
    let m = mask(width, alen.min(blen));
    a & m == b & m
}

fn special(net: Network) -> Option<&'static str> {
    let (a, w) = (bits(net.addr), max_len(net.addr));
    match net.addr {
        IpAddr::V4(_) => SPECIAL_V4
            .iter()
            .find(|(n, l, _)| overlaps(a, net.len, u32::from(*n) as u128, *l, w))
            .map(|x| x.2),
        IpAddr::V6(_) => SPECIAL_V6
            .iter()
            .find(|(n, l, _)| overlaps(a, net.len, u128::from(*n), *l, w))
            .map(|x| x.2),
    }
}

/// Accepts an address that names one host on the internet: refuses
/// unspecified, loopback, private (RFC 1918), shared (RFC 6598),
/// link-local, multicast, broadcast and reserved addresses, IPv4-mapped and
/// IPv4-compatible IPv6 and unique local IPv6 ([`Refusal::SpecialAddress`]).
/// A private address names a different host in every network, so blocking
/// one a feed reported would cut off a host of the ISP's own.
pub fn check_address(ip: IpAddr) -> Result<IpAddr, Refusal> {
    check_network(Network {
        addr: ip,
        len: max_len(ip),
    })
    .map(|n| n.addr)
}

/// Accepts an address or a prefix of at least [`MIN_PREFIX_V4`] /
/// [`MIN_PREFIX_V6`] bits that overlaps no special-purpose range (see
/// [`check_address`]).
pub fn check_network(net: Network) -> Result<Network, Refusal> {
    let w = max_len(net.addr);
    if net.len > w || bits(net.addr) & !mask(w, net.len) & mask(w, w) != 0 {
        return Err(Refusal::NotANetwork(format!("{}/{}", net.addr, net.len)));
    }
    let min = if w == 32 {
        MIN_PREFIX_V4
    } else {
        MIN_PREFIX_V6
    };
    if net.len < min {
        return Err(Refusal::PrefixTooWide { len: net.len, min });
    }
    match special(net) {
        Some(what) => Err(Refusal::SpecialAddress {
            addr: net.to_string(),
            what,
        }),
        None => Ok(net),
    }
}

/// Parses and checks `address` or `address/length` (see [`check_network`]).
/// `None` when the text is neither.
pub fn parse_network(text: &str) -> Option<Result<Network, Refusal>> {
    let (a, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    let len = match len {
        None => max_len(addr),
        Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
            match l.parse::<u8>() {
                Ok(l) => l,
                Err(_) => return Some(Err(Refusal::NotANetwork(text.to_string()))),
            }
        }
        Some(_) => return None,
    };
    Some(check_network(Network { addr, len }))
}

fn is_decimal(label: &str) -> bool {
    !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit())
}

fn is_octet(label: &str) -> bool {
    is_decimal(label) && label.len() <= 3 && label.parse::<u16>().is_ok_and(|v| v <= 255)
}

/// Whether `name` (lower case, no trailing dot) is a top-level domain or a
/// public suffix by Mozilla's Public Suffix List, both its ICANN and its
/// private sections (`co.jp`, `github.io`, `duckdns.org`), or a single
/// label (the list's implicit `*` rule makes every TLD a suffix).
///
/// The list comes from the `psl` crate, which compiles the list into code
/// (no file or network at run time) and is republished automatically
/// whenever the upstream list changes; `publicsuffix` was the other
/// candidate but loads the list at run time and pulls in IDNA tables.
pub fn is_public_suffix(name: &str) -> bool {
    psl::domain(name.as_bytes()).is_none()
}

/// Checks a host name for a blocklist and returns it normalised (ASCII
/// lower case, one trailing root dot removed). The rules:
///
/// - LDH syntax (RFC 1035 section 2.3.1, RFC 1123 section 2.1): ASCII
///   letters, digits and hyphens, no hyphen at either end of a label;
///   labels of 1 to 63 octets, no empty label (`a..b`, a leading dot or a
///   second trailing dot), at most 253 characters. Internationalised names
///   must come as A-labels (`xn--...`), underscores are refused.
/// - No label that is an RPZ trigger or action name: every label beginning
///   with `rpz-` (`rpz-ip`, `rpz-client-ip`, `rpz-nsdname`, `rpz-nsip`,
///   `rpz-passthru`, `rpz-drop`, `rpz-tcp-only`; draft-vixie-dnsop-dns-rpz
///   and BIND's ARM reserve the prefix), wherever it stands.
/// - Not written like an address: the last label is not a number (decimal
///   or `0x` hex: URL parsers read `127.1` or `0x7f.1` as an IPv4 address,
///   WHATWG URL "ends in a number"), and no four numeric labels in a row
///   (the shape of `rpz-ip`, `rpz-nsip`, `rpz-client-ip` and `in-addr.arpa`
///   names).
/// - Not a top-level domain or public suffix ([`is_public_suffix`]).
///
/// # Errors
/// The first rule broken, as a [`Refusal`].
pub fn check_domain(raw: &str) -> Result<String, Refusal> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() {
        return Err(Refusal::NotAName("empty"));
    }
    if name.len() > 253 {
        return Err(Refusal::NotAName("longer than 253 characters"));
    }
    if !name.is_ascii() {
        return Err(Refusal::NotAName(
            "not ASCII (internationalised names come as xn-- A-labels)",
        ));
    }
    let name = name.to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(Refusal::NotAName("an empty label"));
        }
        if label.len() > 63 {
            return Err(Refusal::NotAName("a label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Refusal::NotAName(
                "a character other than a letter, a digit, a hyphen or a dot",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(Refusal::NotAName(
                "a label that begins or ends with a hyphen",
            ));
        }
    }
    if let Some(l) = labels.iter().find(|l| l.starts_with("rpz-")) {
        return Err(Refusal::RpzLabel(l.to_string()));
    }
    let last = labels[labels.len() - 1];
    let hex_number = last
        .strip_prefix("0x")
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if is_decimal(last) || hex_number {
        return Err(Refusal::AddressShaped(
            "the last label is a number, so URL parsers read the name as an IPv4 address",
        ));
    }
    if labels.windows(4).any(|w| w.iter().all(|l| is_octet(l))) {
        return Err(Refusal::AddressShaped(
            "four numeric labels in a row, as in rpz-ip and in-addr.arpa names",
        ));
    }
    if is_public_suffix(&name) {
        return Err(Refusal::PublicSuffix(name));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused_with_the_rule_they_break() {
        let refused = |s: &str| check_domain(s).unwrap_err();
        // The reproducer's four and the empty label.
        assert_eq!(
            refused("8.0.0.0.10.rpz-client-ip"),
            Refusal::RpzLabel("rpz-client-ip".into())
        );
        assert_eq!(
            refused("1.0.0.0.0.rpz-ip"),
            Refusal::RpzLabel("rpz-ip".into())
        );
        assert_eq!(
            refused("com.rpz-nsdname"),
            Refusal::RpzLabel("rpz-nsdname".into())
        );
        assert_eq!(refused("co.jp"), Refusal::PublicSuffix("co.jp".into()));
        assert_eq!(refused("a..b"), Refusal::NotAName("an empty label"));
        // Trigger and action labels anywhere, in any case.
        for s in [
            "32.1.2.0.192.RPZ-NSIP",
            "rpz-passthru.example.com",
            "x.rpz-drop.example.com",
            "evil.rpz-tcp-only.example.org",
            "ns.example.com.rpz-nsdname.evil.example",
            "rpz-anything-new.example.net",
        ] {
            assert!(matches!(refused(s), Refusal::RpzLabel(_)), "{s}");
        }
        // Public suffixes, ICANN and private, and bare TLDs.
        for s in [
            "com",
            "jp",
            "co.jp",
            "github.io",
            "duckdns.org",
            "COM.",
            "example",
            "uk.com",
        ] {
            assert!(matches!(refused(s), Refusal::PublicSuffix(_)), "{s}");
        }
        // Address-shaped.
        for s in [
            "127.1",
            "0x7f.1",
            "1.2.3.4.5",
            "2130706433",
            "10.0.0.1.evil.example",
            "1.0.0.127.in-addr.arpa",
        ] {
            assert!(matches!(refused(s), Refusal::AddressShaped(_)), "{s}");
        }
        // Syntax.
        for s in [
            "",
            ".",
            ".example.com",
            "example.com..",
            "a b.example.com",
            "bad_host.example.com",
            "-x.example.com",
            "x-.example.com",
            "exa%2ecom.example",
            "ex\u{0430}mple.com",
            "x.example.com\n@ IN NS evil.",
            "$ORIGIN.example.com",
            "*.example.com",
            "@",
        ] {
            assert!(matches!(refused(s), Refusal::NotAName(_)), "{s:?}");
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(matches!(refused(&long_label), Refusal::NotAName(_)));
        let long_name = format!("{}example.com", "abcdefghi.".repeat(25));
        assert!(long_name.len() > 253);
        assert!(matches!(refused(&long_name), Refusal::NotAName(_)));
    }

    #[test]
    fn ordinary_names_pass_normalised() {
        for (raw, want) in [
            ("bad.example.com", "bad.example.com"),
            ("CNC.Bad.Example.", "cnc.bad.example"),
            ("evil.co.jp", "evil.co.jp"),
            ("x.evil.github.io", "x.evil.github.io"),
            ("xn--80ak6aa92e.com", "xn--80ak6aa92e.com"),
            ("1.2.3.evil.example", "1.2.3.evil.example"),
            ("3com.com", "3com.com"),
            ("a-b.example.org", "a-b.example.org"),
        ] {
            assert_eq!(check_domain(raw).as_deref(), Ok(want), "{raw}");
        }
        let max_label = format!("{}.example.com", "a".repeat(63));
        assert!(check_domain(&max_label).is_ok());
    }

    #[test]
    fn addresses_and_prefixes_must_name_few_hosts_on_the_internet() {
        let net = |s: &str| parse_network(s).expect("address syntax");
        assert!(net("198.51.100.7").is_ok());
        assert!(net("2001:db8::c2").is_ok());
        assert_eq!(
            net("198.51.100.0/24").unwrap().to_string(),
            "198.51.100.0/24"
        );
        assert!(net("2001:db8::/32").is_ok());
        assert!(net("11.0.0.0/8").is_ok());
        for (s, min) in [
            ("0.0.0.0/0", 8),
            ("128.0.0.0/1", 8),
            ("12.0.0.0/7", 8),
            ("::/0", 32),
            ("2000::/3", 32),
            ("2001:db8::/31", 32),
        ] {
            assert!(
                matches!(net(s), Err(Refusal::PrefixTooWide { min: m, .. }) if m == min),
                "{s}"
            );
        }
        for s in [
            "198.51.100.1/24",
            "10.0.0.0/33",
            "2001:db8::1/64",
            "1.2.3.4/999",
        ] {
            assert!(matches!(net(s), Err(Refusal::NotANetwork(_))), "{s}");
        }
        for s in [
            "0.0.0.0",
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "10.0.0.0/8",
            "172.0.0.0/8",
            "::",
            "::1",
            "::ffff:198.51.100.7",
            "::198.51.100.7",
            "fd00::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(matches!(net(s), Err(Refusal::SpecialAddress { .. })), "{s}");
        }
        assert!(parse_network("bad.example.com").is_none());
        assert!(parse_network("1.2.3.4/x").is_none());
    }
}
