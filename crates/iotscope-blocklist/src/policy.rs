//! What a blocklist entry may be. Feeds such as URLhaus and ThreatFox take
//! public submissions, so every value is hostile until it passes here: a
//! host must be a plain host name that blocks only itself (and, in the RPZ,
//! its subdomains), read from a URL only where browsers and other clients
//! find the same host ([`url_host`]), and an address must name one host on
//! the internet. Feeds give addresses, never prefixes: `address/length` is
//! refused wherever it stands. Everything else is refused with a
//! [`Refusal`] that says why, at import (with the feed line) and again at
//! export (an older store may hold entries imported before these rules).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    /// (IANA special-purpose registries, RFC 6890 and its updates, and the
    /// documentation ranges).
    #[error("{addr} is {what}: it names no single host on the internet")]
    SpecialAddress {
        /// The address.
        addr: String,
        /// Which range (`loopback (RFC 1122)`, ...).
        what: &'static str,
    },
    /// `address/length`: feeds name hosts, and a prefix (`11.0.0.0/8:443`,
    /// `[2001:4860::/32]:443`, a ThreatFox domain `9.0.0.0/8`) would block
    /// every host in it.
    #[error(
        "a prefix, not one address: a feed names hosts, and a prefix would block every host in it"
    )]
    Prefix,
    /// Not an IP address where one must stand (a ThreatFox `ip:port`, an
    /// address in the store).
    #[error("not an IP address")]
    NotAnAddress,
    /// A URL whose host is not certain (see [`url_host`]).
    #[error("the URL's host is not certain: {0}")]
    Url(&'static str),
    /// A name longer than [`MAX_RPZ_NAME`] (RPZ export only).
    #[error("longer than {MAX_RPZ_NAME} characters, too long for a response-policy zone")]
    TooLongForRpz,
}

/// Ranges that name no single internet host, most specific first: the IANA
/// IPv4 Special-Purpose Address Registry (RFC 6890 and its updates) and the
/// documentation ranges. Examples and tests list addresses outside them.
const SPECIAL_V4: &[(Ipv4Addr, u8, &str)] = &[
    (
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        "the limited broadcast address (RFC 919, RFC 8190)",
    ),
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "\"this network\" (RFC 791, RFC 1122)",
    ),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private (RFC 1918)"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared carrier-grade NAT space (RFC 6598)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (RFC 1122)"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local (RFC 3927)"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private (RFC 1918)"),
    // DS-Lite (RFC 7335), NAT64 discovery (RFC 7050), PCP and TURN anycast
    // (RFC 7723, RFC 8155), ...: protocol addresses, not hosts.
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments (RFC 6890)",
    ),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation, TEST-NET-1 (RFC 5737)",
    ),
    // Anycast relays run by many operators; deprecated.
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "the former 6to4 relay anycast (RFC 7526)",
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private (RFC 1918)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking (RFC 2544)"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation, TEST-NET-2 (RFC 5737)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation, TEST-NET-3 (RFC 5737)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (RFC 5771)"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved (RFC 1112)"),
];

/// The IPv6 ranges, as [`SPECIAL_V4`] (IANA IPv6 Special-Purpose Address
/// Registry). Ranges that embed an IPv4 address (mapped, compatible, NAT64,
/// 6to4, Teredo) are refused: such an entry stands for an IPv4 host, which
/// a list names as such. Everything outside 2000::/3 is refused after these
/// (see [`check_address`]).
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
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        96,
        "the NAT64 well-known prefix (RFC 6052; it stands for an IPv4 host, list that)",
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use NAT64 (RFC 8215; it stands for an IPv4 host, list that)",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only (RFC 6666)",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        32,
        "Teredo (RFC 4380; it stands for an IPv4 host behind a NAT)",
    ),
    (
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
        48,
        "benchmarking (RFC 5180)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation (RFC 3849)",
    ),
    (
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        "6to4 (RFC 3056; it stands for an IPv4 host, list that)",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation (RFC 9637)",
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
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "site-local (deprecated, RFC 3879)",
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "multicast (RFC 4291)",
    ),
];

/// Whether `addr` (`width` bits) lies in `net/len`.
fn within(addr: u128, net: u128, len: u8, width: u8) -> bool {
    let m = if len == 0 {
        0
    } else {
        (u128::MAX << (128 - len as u32)) >> (128 - width as u32)
    };
    addr & m == net & m
}

fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => SPECIAL_V4
            .iter()
            .find(|(n, l, _)| within(u32::from(a).into(), u32::from(*n).into(), *l, 32))
            .map(|x| x.2),
        IpAddr::V6(a) => SPECIAL_V6
            .iter()
            .find(|(n, l, _)| within(a.into(), (*n).into(), *l, 128))
            .map(|x| x.2)
            .or_else(|| {
                (a.segments()[0] & 0xe000 != 0x2000).then_some(
                    "outside 2000::/3, the only IPv6 space allocated for global unicast (RFC 4291 section 2.4; the rest is reserved)",
                )
            }),
    }
}

/// Accepts an address that names one host on the internet: refuses
/// unspecified, "this network", loopback, private (RFC 1918), shared
/// (RFC 6598), link-local, IETF protocol (192.0.0.0/24), benchmarking,
/// documentation, the 6to4 relay anycast, multicast, broadcast and reserved
/// IPv4; and IPv6 that embeds an IPv4 address (mapped, compatible, NAT64,
/// 6to4, Teredo), discard-only, benchmarking, documentation, unique and
/// site local, link-local, multicast and anything outside 2000::/3
/// ([`Refusal::SpecialAddress`]). A private address names a different host
/// in every network, so blocking one a feed reported would cut off a host
/// of the ISP's own.
pub fn check_address(ip: IpAddr) -> Result<IpAddr, Refusal> {
    match special(ip) {
        Some(what) => Err(Refusal::SpecialAddress {
            addr: ip.to_string(),
            what,
        }),
        None => Ok(ip),
    }
}

/// Parses and checks one address (see [`check_address`]). Text written as
/// a prefix (`address/...`) is [`Refusal::Prefix`]: feeds name hosts, so
/// no feed value and no stored entry is a prefix. `None` when the text is
/// neither an address nor a prefix.
pub fn parse_address(text: &str) -> Option<Result<IpAddr, Refusal>> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(check_address(ip));
    }
    match text.split_once('/') {
        Some((a, _)) if a.parse::<IpAddr>().is_ok() => Some(Err(Refusal::Prefix)),
        _ => None,
    }
}

/// The schemes the WHATWG URL Standard calls special (`file` aside, which
/// names no host to block): for them a backslash ends the host as a slash
/// does.
const SPECIAL_SCHEMES: &[&str] = &["http", "https", "ftp", "ws", "wss"];

/// RFC 3986 `unreserved`, `sub-delims` and `:`: the user name and password
/// characters every parser reads alike (no `%`-encoding, no `@`).
fn userinfo_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b)
}

const NOT_A_HOST: Refusal = Refusal::Url(
    "the host (after any user name) holds a character a host may not hold, such as %-encoding, a space or an underscore; it is refused rather than decoded",
);

/// The host of a URL and its port, as a browser would connect to them
/// (WHATWG URL Standard), where every other client would too; otherwise
/// [`Refusal::Url`]. `http://11.0.2.4:8080/bin.sh` gives `11.0.2.4` and
/// port 8080 (an address or a name, checked afterwards by the caller).
///
/// - A control character anywhere (tab, line break, ...) is refused:
///   browsers delete tabs and line breaks from a URL, other clients keep
///   them, so the two may read different hosts.
/// - The URL must begin `scheme://`: browsers also read `http:\\host` or
///   `http:host`, other clients a path.
/// - The authority ends at the first `/`, `?` or `#` (RFC 3986), and for
///   the special schemes (http, https, ftp, ws, wss) also at a backslash
///   (WHATWG). Where the two differ and an `@` follows the backslash
///   (`http://evil.example\@google.com/`: browsers go to evil.example,
///   RFC 3986 clients to google.com), or the scheme is not special, the
///   URL is refused.
/// - The user name and password are what comes before the `@`; more than
///   one `@`, or a character outside RFC 3986's unreserved and sub-delims
///   (`%`-encoding above all: `http://evil.example%2f@google.com/`) is
///   refused.
/// - The host is `[IPv6]` or letters, digits, hyphens and dots; anything
///   else (`%`, non-ASCII, `_`, a space) is refused rather than decoded.
///   The port is empty or a number up to 65535.
pub fn url_host(url: &str) -> Result<(String, Option<u16>), Refusal> {
    if url.chars().any(char::is_control) {
        return Err(Refusal::Url(
            "a control character such as a tab or a line break: browsers delete tabs and line breaks from a URL, other clients keep them",
        ));
    }
    let url = url.trim_matches(' ');
    let (scheme, rest) = url.split_once("://").ok_or(Refusal::Url(
        "it does not begin scheme://, so where the host is depends on the parser",
    ))?;
    let mut sc = scheme.bytes();
    if !sc.next().is_some_and(|b| b.is_ascii_alphabetic())
        || !sc.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(Refusal::Url("what comes before :// is not a scheme"));
    }
    let special = SPECIAL_SCHEMES
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s));
    // RFC 3986: the authority ends at the first /, ? or #.
    let rfc = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let authority = match rfc.find('\\') {
        None => rfc,
        // WHATWG, special schemes: a backslash ends it like a slash. With
        // no @ after it, RFC 3986 clients find no other host.
        Some(b) if special && !rfc[b..].contains('@') => &rfc[..b],
        Some(_) if special => {
            return Err(Refusal::Url(
                "a backslash and then @ in the authority: browsers end the host at the backslash, other clients take the host after the @",
            ))
        }
        Some(_) => {
            return Err(Refusal::Url(
                "a backslash in the authority of a URL whose scheme is not http, https, ftp, ws or wss",
            ))
        }
    };
    let host_port = match authority.rsplit_once('@') {
        None => authority,
        Some((userinfo, _)) if userinfo.contains('@') => {
            return Err(Refusal::Url(
                "more than one @ in the authority: parsers differ on which one ends the user name",
            ))
        }
        Some((userinfo, _)) if !userinfo.bytes().all(userinfo_byte) => {
            return Err(Refusal::Url(
                "a character in the user name or password that parsers read differently, such as %-encoding",
            ))
        }
        Some((_, host_port)) => host_port,
    };
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(NOT_A_HOST)?;
        h.parse::<Ipv6Addr>().map_err(|_| NOT_A_HOST)?;
        match after {
            "" => (h, None),
            _ => (h, Some(after.strip_prefix(':').ok_or(NOT_A_HOST)?)),
        }
    } else {
        let (h, p) = match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        };
        if !h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(NOT_A_HOST);
        }
        (h, p)
    };
    if host.is_empty() {
        return Err(Refusal::Url("no host"));
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(
            p.parse::<u16>()
                .map_err(|_| Refusal::Url("a port that is not a number from 0 to 65535"))?,
        ),
        Some(_) => return Err(Refusal::Url("a port that is not a number from 0 to 65535")),
    };
    Ok((host.to_string(), port))
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

    /// Public addresses outside every special range (the tests list these,
    /// not documentation addresses, which are refused).
    const PUBLIC: &[&str] = &[
        "11.0.2.10",
        "1.1.1.1",
        "8.8.8.8",
        "192.0.1.255",
        "192.0.3.0",
        "192.88.98.255",
        "192.88.100.0",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.99.255",
        "198.51.101.0",
        "203.0.112.255",
        "203.0.114.0",
        "223.255.255.255",
        "2a00:11::c2",
        "2000::1",
        "2001:db7:ffff::1",
        "2001:db9::1",
        "2003::1",
        "2001:4860:4860::8888",
        "3fff:1000::1",
    ];

    #[test]
    fn addresses_must_name_one_host_on_the_internet() {
        let addr = |s: &str| parse_address(s).expect("address syntax");
        for s in PUBLIC {
            assert_eq!(addr(s).map(|a| a.to_string()), Ok(s.to_string()));
        }
        // Each range with the reference it cites, at both ends where the
        // range is narrow.
        for (s, rfc) in [
            ("0.0.0.0", "RFC 1122"),
            ("0.255.255.255", "RFC 1122"),
            ("10.1.2.3", "RFC 1918"),
            ("100.64.0.1", "RFC 6598"),
            ("127.0.0.1", "RFC 1122"),
            ("169.254.1.1", "RFC 3927"),
            ("172.16.0.1", "RFC 1918"),
            ("192.0.0.0", "RFC 6890"),
            ("192.0.0.9", "RFC 6890"),
            ("192.0.0.170", "RFC 6890"),
            ("192.0.0.255", "RFC 6890"),
            ("192.0.2.0", "RFC 5737"),
            ("192.0.2.255", "RFC 5737"),
            ("192.88.99.1", "RFC 7526"),
            ("192.88.99.255", "RFC 7526"),
            ("192.168.1.1", "RFC 1918"),
            ("198.18.0.0", "RFC 2544"),
            ("198.19.255.255", "RFC 2544"),
            ("198.51.100.7", "RFC 5737"),
            ("203.0.113.0", "RFC 5737"),
            ("203.0.113.255", "RFC 5737"),
            ("224.0.0.1", "RFC 5771"),
            ("233.252.0.1", "RFC 5771"),
            ("240.0.0.1", "RFC 1112"),
            ("255.255.255.255", "RFC 919"),
            ("::", "RFC 4291"),
            ("::1", "RFC 4291"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("::8.8.8.8", "IPv4-compatible"),
            ("::ffff", "IPv4-compatible"),
            ("64:ff9b::808:808", "RFC 6052"),
            ("64:ff9b::ffff:ffff", "RFC 6052"),
            ("64:ff9b:1::1", "RFC 8215"),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "RFC 8215"),
            ("100::1", "RFC 6666"),
            ("100::ffff:ffff:ffff:ffff", "RFC 6666"),
            ("2001::1", "RFC 4380"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "RFC 4380"),
            ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "RFC 4380"),
            ("2001:2::1", "RFC 5180"),
            ("2001:db8::", "RFC 3849"),
            ("2001:db8::c2", "RFC 3849"),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "RFC 3849"),
            ("2002::1", "RFC 3056"),
            ("2002:808:808::1", "RFC 3056"),
            ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "RFC 3056"),
            ("3fff::1", "RFC 9637"),
            ("3fff:fff::1", "RFC 9637"),
            ("fd00::1", "RFC 4193"),
            ("fe80::1", "link-local"),
            ("fec0::1", "RFC 3879"),
            ("ff02::1", "multicast"),
            ("64:ff9b:2::1", "2000::/3"),
            ("1::1", "2000::/3"),
            ("4000::1", "2000::/3"),
            ("5f00::1", "2000::/3"),
        ] {
            match addr(s) {
                Err(Refusal::SpecialAddress { what, .. }) => {
                    assert!(what.contains(rfc), "{s}: {what}")
                }
                other => panic!("{s}: {other:?}"),
            }
        }
        assert!(parse_address("bad.example.com").is_none());
        assert!(parse_address("").is_none());
        assert!(parse_address("010.0.0.1").is_none());
    }

    /// Feeds give addresses: a prefix is refused whatever its width (the
    /// hostile review's `11.0.0.0/8`, `9.0.0.0/8`, `2001:4860::/32`,
    /// `64:ff9b::/96`), so is anything written like one.
    #[test]
    fn prefixes_are_refused() {
        for s in [
            "11.0.0.0/8",
            "9.0.0.0/8",
            "8.8.8.8/32",
            "0.0.0.0/0",
            "2001:4860::/32",
            "64:ff9b::/96",
            "::/0",
            "2a00:11::c2/128",
            "1.2.3.4/x",
            "1.2.3.4/",
            "1.2.3.4/24/8",
        ] {
            assert_eq!(parse_address(s), Some(Err(Refusal::Prefix)), "{s}");
        }
    }

    #[test]
    fn url_hosts_are_read_as_browsers_and_other_clients_agree() {
        let host = |u: &str| url_host(u).map(|(h, _)| h);
        for (url, want, port) in [
            ("http://evil.example/x", "evil.example", None),
            ("HTTP://Evil.Example:8080/x", "Evil.Example", Some(8080)),
            ("http://11.0.2.10:53402/bin.sh", "11.0.2.10", Some(53402)),
            ("http://[2a00:11::c2]:80/i", "2a00:11::c2", Some(80)),
            ("http://[2a00:11::c2]/i", "2a00:11::c2", None),
            ("http://evil.example:/x", "evil.example", None),
            ("http://evil.example", "evil.example", None),
            ("http://evil.example?q=1", "evil.example", None),
            ("https://u:p@evil.example:443/", "evil.example", Some(443)),
            // The host is after the @, for every parser.
            ("http://google.com@evil.example/", "evil.example", None),
            ("http://@evil.example/", "evil.example", None),
            // # and ? end the authority: the @ is in the fragment or query.
            ("http://evil.example#@google.com/", "evil.example", None),
            ("http://evil.example?@google.com/", "evil.example", None),
            ("http://evil.example/@google.com/", "evil.example", None),
            // A backslash with no @ after it: browsers end the host there,
            // other clients find no valid host at all.
            ("http://evil.example\\x.sh", "evil.example", None),
            ("http://evil.example:81\\x.sh", "evil.example", Some(81)),
        ] {
            assert_eq!(url_host(url), Ok((want.to_string(), port)), "{url:?}");
        }
        for url in [
            // The hostile review's two: browsers go to evil.example, RFC
            // 3986 clients to google.com; no reading is certain.
            "http://evil.example\\@google.com/x",
            "https://evil.example\\@drive.google.com/file",
            "http://evil.example\\x@google.com/",
            "http://\\@google.com/",
            "foo://evil.example\\x/",
            // %-encoding in the user name or the host: refused, not decoded.
            "http://evil.example%2f@google.com/",
            "http://evil.example%40google.com/",
            "http://evil%2eexample/",
            "http://[2a00:11::c2%25eth0]/",
            // Two @.
            "http://evil.example@x@google.com/",
            // Tabs and line breaks, which WHATWG deletes.
            "http://google.com\t@evil.example/",
            "http://evil.example\t\\@google.com/",
            "http://google.com\n@evil.example/",
            "http://evil.exa\nmple/",
            "http://evil.exa\rmple/",
            "ht\ttp://evil.example/",
            "http://evil.example/x\t",
            "http://evil.example\u{0}.google.com/",
            // No scheme://, or no host after it.
            "evil.example/x",
            "http:\\\\evil.example\\x",
            "http:/\\evil.example/",
            "http:evil.example",
            "http:///evil.example/",
            "http://\\evil.example/",
            "http://",
            "http://evil.example@/",
            "://evil.example/",
            "1http://evil.example/",
            // Characters no host holds, ports that are no port.
            "http://ex_ample.com/",
            "http://bücher.example/",
            "http://evil example/",
            "http://[2a00:11::c2/",
            "http://[not-v6]/",
            "http://[2a00:11::c2]x/",
            "http://evil.example:65536/",
            "http://evil.example:+80/",
            "http://evil.example:80:80/",
            "http://2a00:11::c2/",
        ] {
            assert!(
                matches!(url_host(url), Err(Refusal::Url(_))),
                "{url:?}: {:?}",
                host(url)
            );
        }
    }
}
