//! Finding IPv4 and IPv6 addresses wherever they stand in text: glued to
//! letters (`abc203.0.113.10`), after a colon (`IP:203.0.113.7`,
//! `fe:203.0.113.9`), in brackets and URLs (`http://[2001:db8::1]:8080/`),
//! before a port, a zone (`fe80::1%eth0`) or a prefix length
//! (`2001:db8::/32`), and IPv4-mapped (`::ffff:192.0.2.1`).
//!
//! The scanner tries every offset where an address could begin, takes the
//! longest address that starts there and goes on after it. It needs no
//! separator on either side, so an address cannot hide behind a neighbour
//! that happens to be an address character too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// The most bytes one attempt at one offset examines: an IPv6 address is at
/// most 45 characters (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`),
/// plus the dotted quad tried inside it and a character of look-ahead.
pub const MAX_WORK_PER_OFFSET: usize = 64;

/// Every IPv4 and IPv6 address written in `text`, in order, as the byte
/// range it occupies and the address it names.
///
/// # What is an address
/// - IPv4: four decimal octets of one to three digits, each at most 255,
///   joined by dots. Zero-padded octets count and are read as decimal, as
///   people write them (`192.168.001.010` is 192.168.1.10).
/// - IPv6: the text forms of RFC 4291 section 2.2 (groups of one to four
///   hexadecimal digits in either case, at most one `::`, optionally
///   ending in a dotted IPv4 address, as in `::ffff:192.0.2.1`), with at
///   least two groups written out (a dotted IPv4 counts as two). `::`,
///   `::1`, `a::` and the like are left alone: they identify no one, and
///   the shape is common in code (`std::string`, `Foo::bar`).
///
/// # Contract
/// - Matches do not overlap and come in text order. At each offset not
///   inside an earlier match, the longest address (IPv4 or IPv6) that
///   begins there is taken, whatever comes before or after it.
/// - Every substring of `text` that is an address by the rules above
///   overlaps some match. Replacing every match therefore leaves no
///   address whole; where a neighbour extends an address
///   (`203.0.113.71` for `203.0.113.7` followed by `1`) the longer one is
///   taken.
/// - A range covers the address only, never brackets, a port, a zone
///   (`%eth0`, `%25eth0`) or a prefix length (`/64`); its ends are always
///   character boundaries (addresses are ASCII).
/// - Work is linear: each offset costs at most [`MAX_WORK_PER_OFFSET`]
///   bytes examined, so a megabyte of digits and dots is scanned in a
///   few tens of millions of steps, never quadratically.
///
/// # Not recognised
/// IPv4 in other notations (`0xc0.0.2.1`, `3221225985`, `127.1`), and
/// addresses broken up by other characters: defanged (`203[.]0[.]113[.]7`),
/// percent- or entity-encoded, or written with non-ASCII digits or dots.
///
/// ```
/// let found: Vec<_> = iotscope_share::find_addresses("IP:203.0.113.7 gw fe:203.0.113.9")
///     .map(|(r, ip)| (r, ip.to_string()))
///     .collect();
/// assert_eq!(found, [(3..14, "203.0.113.7".to_string()), (21..32, "203.0.113.9".to_string())]);
/// ```
pub fn find_addresses(text: &str) -> Addresses<'_> {
    Addresses {
        b: text.as_bytes(),
        pos: 0,
        work: 0,
    }
}

/// The iterator of [`find_addresses`].
#[derive(Clone, Debug)]
pub struct Addresses<'a> {
    b: &'a [u8],
    pos: usize,
    work: usize,
}

impl Addresses<'_> {
    /// Bytes examined so far (for the linear-work test).
    #[cfg(test)]
    pub(crate) fn work(&self) -> usize {
        self.work
    }
}

impl Iterator for Addresses<'_> {
    type Item = (Range<usize>, IpAddr);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.b;
        while self.pos < b.len() {
            let s = self.pos;
            let c = b[s];
            self.work += 1;
            let v6 = if c.is_ascii_hexdigit() || c == b':' {
                v6_at(b, s, &mut self.work)
            } else {
                None
            };
            let v4 = if c.is_ascii_digit() {
                v4_at(b, s, &mut self.work)
            } else {
                None
            };
            let found = match (v4, v6) {
                (Some((e4, a)), Some((e6, _))) if e4 >= e6 => Some((e4, IpAddr::V4(a))),
                (_, Some((e6, a))) => Some((e6, IpAddr::V6(a))),
                (Some((e4, a)), None) => Some((e4, IpAddr::V4(a))),
                (None, None) => None,
            };
            match found {
                Some((end, ip)) => {
                    self.pos = end;
                    return Some((s..end, ip));
                }
                None => self.pos += 1,
            }
        }
        None
    }
}

/// The IPv4 address that begins at `s`, the longest one: the first three
/// octets are fixed by the dots, the last takes as many digits as keep it
/// at most 255.
fn v4_at(b: &[u8], s: usize, work: &mut usize) -> Option<(usize, Ipv4Addr)> {
    let mut o = [0u8; 4];
    let mut i = s;
    for (n, slot) in o.iter_mut().enumerate() {
        let start = i;
        let mut v: u32 = 0;
        while i < b.len() && i - start < 3 && b[i].is_ascii_digit() {
            *work += 1;
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        if i == start {
            return None;
        }
        if n < 3 {
            // A fourth digit or anything but a dot ends it.
            *work += 1;
            if v > 255 || b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        } else if v > 255 {
            // "799": the longest octet is "79".
            v /= 10;
            i -= 1;
        }
        *slot = v as u8;
    }
    Some((i, Ipv4Addr::from(o)))
}

/// IPv6 groups read so far: before and after the `::`.
struct Groups {
    head: [u16; 8],
    nh: usize,
    tail: [u16; 8],
    nt: usize,
    dc: bool,
}

impl Groups {
    fn push(&mut self, g: u16) {
        if self.dc {
            self.tail[self.nt] = g;
            self.nt += 1;
        } else {
            self.head[self.nh] = g;
            self.nh += 1;
        }
    }

    fn pop(&mut self) {
        if self.dc {
            self.nt -= 1;
        } else {
            self.nh -= 1;
        }
    }

    fn total(&self) -> usize {
        self.nh + self.nt
    }

    /// The address, when the groups make one with at least two written out.
    fn address(&self) -> Option<Ipv6Addr> {
        let n = self.total();
        let complete = if self.dc { n <= 7 } else { n == 8 };
        if !complete || n < 2 {
            return None;
        }
        let mut g = [0u16; 8];
        g[..self.nh].copy_from_slice(&self.head[..self.nh]);
        g[8 - self.nt..].copy_from_slice(&self.tail[..self.nt]);
        Some(Ipv6Addr::from(g))
    }
}

/// The longest IPv6 address that begins at `s`. Every place where the text
/// read so far is a complete address is a candidate end; the last one wins.
fn v6_at(b: &[u8], s: usize, work: &mut usize) -> Option<(usize, Ipv6Addr)> {
    let mut g = Groups {
        head: [0; 8],
        nh: 0,
        tail: [0; 8],
        nt: 0,
        dc: false,
    };
    let mut best: Option<(usize, Ipv6Addr)> = None;
    let consider = |g: &Groups, end: usize, best: &mut Option<(usize, Ipv6Addr)>| {
        if let Some(a) = g.address() {
            if best.is_none_or(|(e, _)| end > e) {
                *best = Some((end, a));
            }
        }
    };
    let mut i = s;
    if b[i..].starts_with(b"::") {
        *work += 2;
        g.dc = true;
        i += 2;
    }
    loop {
        let total = g.total();
        if total >= 8 || (g.dc && total >= 7) {
            break;
        }
        let mut v: u32 = 0;
        let mut k = i;
        while k < b.len() && k - i < 4 && b[k].is_ascii_hexdigit() {
            *work += 1;
            v = v * 16 + (b[k] as char).to_digit(16).expect("hex digit");
            k += 1;
        }
        if k == i {
            break;
        }
        // A dotted IPv4 address in place of the last two groups.
        if b.get(k) == Some(&b'.') {
            let room = if g.dc { total + 2 <= 7 } else { total == 6 };
            if room {
                if let Some((e, q)) = v4_at(b, i, work) {
                    let o = q.octets();
                    g.push(u16::from_be_bytes([o[0], o[1]]));
                    g.push(u16::from_be_bytes([o[2], o[3]]));
                    consider(&g, e, &mut best);
                    g.pop();
                    g.pop();
                }
            }
        }
        g.push(v as u16);
        consider(&g, k, &mut best);
        *work += 1;
        match (b.get(k), b.get(k + 1)) {
            // A fifth hex digit: the group, and the address, end here.
            (Some(c), _) if c.is_ascii_hexdigit() => break,
            (Some(b':'), Some(b':')) if !g.dc => {
                *work += 1;
                g.dc = true;
                i = k + 2;
                consider(&g, i, &mut best);
            }
            (Some(b':'), Some(c)) if c.is_ascii_hexdigit() => i = k + 1,
            _ => break,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&str, String)> {
        find_addresses(text)
            .map(|(r, ip)| (&text[r], ip.to_string()))
            .collect()
    }

    #[test]
    fn addresses_are_found_wherever_they_stand() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("IP:203.0.113.7", &[("203.0.113.7", "203.0.113.7")]),
            (
                "WAN address:198.51.100.23\r\n",
                &[("198.51.100.23", "198.51.100.23")],
            ),
            ("abc203.0.113.10", &[("203.0.113.10", "203.0.113.10")]),
            ("fe:203.0.113.9", &[("203.0.113.9", "203.0.113.9")]),
            ("1203.0.113.7", &[("203.0.113.7", "203.0.113.7")]),
            ("203.0.113.799", &[("203.0.113.79", "203.0.113.79")]),
            ("LAN IP=192.168.1.1;", &[("192.168.1.1", "192.168.1.1")]),
            ("192.168.001.010", &[("192.168.001.010", "192.168.1.10")]),
            ("host 203.0.113.7:8080/x", &[("203.0.113.7", "203.0.113.7")]),
            (
                "http://[2001:db8::1]:8080/",
                &[("2001:db8::1", "2001:db8::1")],
            ),
            ("xx2001:DB8::A/32,", &[("2001:DB8::A", "2001:db8::a")]),
            ("fe80::1%eth0", &[("fe80::1", "fe80::1")]),
            ("fe80::1%25eth0", &[("fe80::1", "fe80::1")]),
            (
                "::ffff:203.0.113.7",
                &[("::ffff:203.0.113.7", "::ffff:203.0.113.7")],
            ),
            ("::203.0.113.7", &[("::203.0.113.7", "::cb00:7107")]),
            (
                "0:0:0:0:0:ffff:203.0.113.7",
                &[("0:0:0:0:0:ffff:203.0.113.7", "::ffff:203.0.113.7")],
            ),
            (
                "1:2:3:4:5:6:7:8:9",
                &[("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8")],
            ),
            ("2001:db8::1abcd", &[("2001:db8::1abc", "2001:db8::1abc")]),
            ("a::2001:db8::1", &[("a::2001:db8", "a::2001:db8")]),
            (
                "mapped=[::FFFF:198.51.100.1]",
                &[("::FFFF:198.51.100.1", "::ffff:198.51.100.1")],
            ),
            (
                "1.2.3.4.5.6.7.8",
                &[("1.2.3.4", "1.2.3.4"), ("5.6.7.8", "5.6.7.8")],
            ),
        ];
        for (text, want) in cases {
            let want: Vec<(&str, String)> = want.iter().map(|(s, a)| (*s, a.to_string())).collect();
            assert_eq!(found(text), want, "{text:?}");
        }
    }

    #[test]
    fn text_that_is_not_an_address_is_left_alone() {
        for text in [
            "at 18:14:44.252",
            "port 23 from 1.2.3",
            "std::string and Foo::bar",
            "::",
            "::1",
            "a::",
            "00:11:22:33:44:55",
            "2024-06-23 09:01:04",
            "deadbeef",
            "1:2:3:4:5:6:7",
            "1.2.3.-4",
            "Ⅰ.Ⅱ.Ⅲ.Ⅳ ２０３．０．１１３．７",
        ] {
            assert_eq!(found(text), [], "{text:?}");
        }
    }

    /// Every substring that the standard library reads as an address (with
    /// two or more IPv6 groups written out) overlaps a match, in texts made
    /// of the characters addresses are made of.
    #[test]
    fn no_address_substring_escapes_the_scanner() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 2000,
            ..Default::default()
        });
        runner
            .run(&"[0-9a-fA-F.:x/%\\[\\]]{0,48}", |text| {
                let matches: Vec<Range<usize>> = find_addresses(&text).map(|(r, _)| r).collect();
                for i in 0..text.len() {
                    for j in i + 2..=text.len() {
                        let sub = &text[i..j];
                        let Ok(ip) = sub.parse::<IpAddr>() else {
                            continue;
                        };
                        if ip.is_ipv6() {
                            let written = sub.split(':').filter(|g| !g.is_empty()).count()
                                + usize::from(sub.contains('.'));
                            if written < 2 {
                                continue;
                            }
                        }
                        prop_assert!(
                            matches.iter().any(|m| m.start < j && i < m.end),
                            "{sub:?} at {i}..{j} in {text:?}: matches {matches:?}"
                        );
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn work_is_linear_in_the_text() {
        let mb = 1 << 20;
        let texts = [
            "1.".repeat(mb / 2),
            "1".repeat(mb),
            "255.255.255.25".repeat(mb / 14),
            "1:".repeat(mb / 2),
            "ffff:".repeat(mb / 5),
            ":".repeat(mb),
            "1::1:".repeat(mb / 5),
            "0:0:0:0:0:0:1.1.1.".repeat(mb / 18),
            "a".repeat(mb),
            // Never complete: seven groups, a quad one octet short.
            "1:1:1:1:1:1:1 ".repeat(mb / 14),
            "1:1:1:1:1:1:1.1.1.1111 ".repeat(mb / 23),
            "1111:1111:1111:1111:1111:1111:1111 ".repeat(mb / 35),
        ];
        for t in &texts {
            let mut it = find_addresses(t);
            let n = it.by_ref().count();
            assert!(
                it.work() <= MAX_WORK_PER_OFFSET * t.len(),
                "{} bytes examined for {} bytes of {:?}... ({n} found)",
                it.work(),
                t.len(),
                &t[..20]
            );
        }
    }
}
