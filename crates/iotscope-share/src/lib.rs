//! Sharing data between organisations without sharing who is who:
//! addresses replaced by their Crypto-PAn images (prefix-preserving), by a
//! prefix (truncation), or by a keyed hash, in single addresses, in CIDR
//! strings and anywhere inside an exported JSON document.
//!
//! Addresses inside text are found by [`find_addresses`], which needs no
//! separator around an address (`IP:203.0.113.7`, `abc203.0.113.10`,
//! `http://[2001:db8::1]:8080/`); other exports use it as a last gate.

pub mod cryptopan;
pub mod scan;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use cryptopan::CryptoPan;
pub use scan::{find_addresses, Addresses};

/// A key file that is not a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Neither 64 hex characters nor 32 raw bytes.
    #[error("{path}: a key is 64 hexadecimal characters (or 32 raw bytes); found {len} bytes")]
    Format {
        /// The file.
        path: String,
        /// Its length.
        len: usize,
    },
}

/// Reads a key: 64 hex characters (surrounding whitespace allowed) or 32 raw bytes.
pub fn parse_key(bytes: &[u8], path: &str) -> Result<[u8; 32], KeyError> {
    let text = std::str::from_utf8(bytes).map(str::trim).unwrap_or("");
    let mut key = [0u8; 32];
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits");
        }
        return Ok(key);
    }
    if bytes.len() == 32 {
        key.copy_from_slice(bytes);
        return Ok(key);
    }
    Err(KeyError::Format {
        path: path.to_string(),
        len: bytes.len(),
    })
}

/// A fresh key as 64 hex characters, from the operating system's random source.
pub fn keygen() -> std::io::Result<String> {
    let mut key = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
    Ok(key.iter().map(|b| format!("{b:02x}")).collect())
}

/// How addresses are replaced.
#[derive(Clone, Debug)]
pub enum Anonymizer {
    /// Crypto-PAn images.
    CryptoPan(Box<CryptoPan>),
    /// Keep the first `v4` / `v6` bits, zero the rest.
    Truncate {
        /// IPv4 prefix length kept.
        v4: u8,
        /// IPv6 prefix length kept.
        v6: u8,
    },
    /// SHA-256 of key and address, as an address of the same family (not
    /// prefix-preserving; distinct addresses may collide in IPv4).
    Hash([u8; 32]),
}

impl Anonymizer {
    /// The image of one address.
    pub fn ip(&self, ip: IpAddr) -> IpAddr {
        match (self, ip) {
            (Anonymizer::CryptoPan(p), IpAddr::V4(a)) => {
                Ipv4Addr::from(p.anonymize_v4(a.into())).into()
            }
            (Anonymizer::CryptoPan(p), IpAddr::V6(a)) => {
                Ipv6Addr::from(p.anonymize_v6(a.into())).into()
            }
            (Anonymizer::Truncate { v4, .. }, IpAddr::V4(a)) => {
                let mask = if *v4 == 0 {
                    0
                } else {
                    u32::MAX << (32 - (*v4).min(32))
                };
                Ipv4Addr::from(u32::from(a) & mask).into()
            }
            (Anonymizer::Truncate { v6, .. }, IpAddr::V6(a)) => {
                let mask = if *v6 == 0 {
                    0
                } else {
                    u128::MAX << (128 - (*v6).min(128))
                };
                Ipv6Addr::from(u128::from(a) & mask).into()
            }
            (Anonymizer::Hash(key), ip) => {
                let mut h = Sha256::new();
                h.update(key);
                match ip {
                    IpAddr::V4(a) => {
                        h.update(a.octets());
                        let d = h.finalize();
                        Ipv4Addr::new(d[0], d[1], d[2], d[3]).into()
                    }
                    IpAddr::V6(a) => {
                        h.update(a.octets());
                        let d = h.finalize();
                        let mut o = [0u8; 16];
                        o.copy_from_slice(&d[..16]);
                        Ipv6Addr::from(o).into()
                    }
                }
            }
        }
    }

    /// The image of an address or CIDR written as text, or `None` when the
    /// text is neither. A CIDR keeps its length; its network is the image
    /// of the network address, masked (Crypto-PAn keeps prefixes, so this is
    /// the prefix every member's image shares).
    pub fn text(&self, s: &str) -> Option<String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(self.ip(ip).to_string());
        }
        let (net, len) = s.split_once('/')?;
        let ip: IpAddr = net.parse().ok()?;
        let len: u8 = len.parse().ok()?;
        self.network(ip, len)
    }

    /// `image/len`: the image of `ip` masked to `len` bits; `None` when
    /// `len` is past the family's width.
    fn network(&self, ip: IpAddr, len: u8) -> Option<String> {
        let masked: IpAddr = match self.ip(ip) {
            IpAddr::V4(a) if len <= 32 => Ipv4Addr::from(u32::from(a) & mask_v4(len)).into(),
            IpAddr::V6(a) if len <= 128 => Ipv6Addr::from(u128::from(a) & mask_v6(len)).into(),
            _ => return None,
        };
        Some(format!("{masked}/{len}"))
    }

    /// Replaces every address inside free text (a URL, a banner, a title):
    /// each match of [`find_addresses`], wherever it stands, becomes its
    /// image. An address followed by `/len` where the address is the
    /// network of that length (`198.18.0.0/16`) and the length is followed
    /// by no address character is a CIDR and becomes the masked image with
    /// the same length, as [`Anonymizer::text`] does. Zones (`%eth0`) and
    /// ports are kept. Returns the new text and how many were replaced.
    ///
    /// No address survives whole: every substring that is an address
    /// overlaps a replaced match (see [`find_addresses`]).
    pub fn scrub(&self, s: &str) -> (String, usize) {
        let mut out = String::with_capacity(s.len() + 16);
        let mut n = 0;
        let mut last = 0;
        for (r, ip) in find_addresses(s) {
            debug_assert!(r.start >= last, "a match inside a CIDR's length");
            out.push_str(&s[last..r.start]);
            match cidr_len(s, r.end, ip).and_then(|(len, end)| Some((self.network(ip, len)?, end)))
            {
                Some((image, end)) => {
                    out.push_str(&image);
                    last = end;
                }
                None => {
                    out.push_str(&self.ip(ip).to_string());
                    last = r.end;
                }
            }
            n += 1;
        }
        out.push_str(&s[last..]);
        (out, n)
    }

    /// Replaces every address and CIDR in `v`: whole strings, addresses
    /// inside text, and object keys. Returns how many were replaced.
    pub fn json(&self, v: &mut Value) -> usize {
        match v {
            Value::String(s) => match self.text(s) {
                Some(t) => {
                    *s = t;
                    1
                }
                None => {
                    let (t, n) = self.scrub(s);
                    *s = t;
                    n
                }
            },
            Value::Array(a) => a.iter_mut().map(|x| self.json(x)).sum(),
            Value::Object(o) => {
                let mut n = 0;
                let keys: Vec<String> = o.keys().cloned().collect();
                for k in keys {
                    let mut val = o.remove(&k).expect("key present");
                    n += self.json(&mut val);
                    // Keys are text too ("IP:203.0.113.7" as a key).
                    let k2 = match self.text(&k) {
                        Some(t) => {
                            n += 1;
                            t
                        }
                        None => {
                            let (t, m) = self.scrub(&k);
                            n += m;
                            t
                        }
                    };
                    o.insert(k2, val);
                }
                n
            }
            _ => 0,
        }
    }
}

fn mask_v4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

fn mask_v6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

/// The `/len` after an address that ends at `end`, when it makes the
/// address a network: one to three digits, a length within the family,
/// no host bits set, and no address character after it (so no other
/// address can begin inside the length). Returns the length and where it
/// ends.
fn cidr_len(s: &str, end: usize, ip: IpAddr) -> Option<(u8, usize)> {
    let b = s.as_bytes();
    if b.get(end) != Some(&b'/') {
        return None;
    }
    let digits = b[end + 1..]
        .iter()
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 || digits > 3 {
        return None;
    }
    let stop = end + 1 + digits;
    if b.get(stop)
        .is_some_and(|&c| c.is_ascii_hexdigit() || c == b'.' || c == b':')
    {
        return None;
    }
    let len: u8 = s[end + 1..stop].parse().ok()?;
    let network = match ip {
        IpAddr::V4(a) => len <= 32 && u32::from(a) & !mask_v4(len) == 0,
        IpAddr::V6(a) => len <= 128 && u128::from(a) & !mask_v6(len) == 0,
    };
    network.then_some((len, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex_or_raw_and_bad_ones_say_where() {
        let hex = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";
        assert_eq!(
            parse_key(format!("{hex}\n").as_bytes(), "k").unwrap()[0],
            0x15
        );
        assert_eq!(parse_key(&[7u8; 32], "k").unwrap(), [7u8; 32]);
        let e = parse_key(b"abc", "key.txt").unwrap_err();
        assert!(e.to_string().starts_with("key.txt: "), "{e}");
        assert_eq!(keygen().unwrap().len(), 64);
    }

    #[test]
    fn documents_lose_every_address_and_keep_their_shape() {
        let key = parse_key(
            b"1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202",
            "k",
        )
        .unwrap();
        let a = Anonymizer::CryptoPan(Box::new(CryptoPan::new(&key)));
        let mut doc = serde_json::json!({
            "darknet": ["198.18.0.0/16"],
            "infected": [{"ip": "198.51.100.7", "packets": 12}],
            "by_source": {"203.0.113.9": 4},
            "note": "port 23 from 1.2.3"
        });
        assert_eq!(a.json(&mut doc), 3);
        let text = doc.to_string();
        for raw in ["198.18.0.0", "198.51.100.7", "203.0.113.9"] {
            assert!(!text.contains(raw), "{text}");
        }
        assert_eq!(doc["infected"][0]["packets"], 12);
        assert_eq!(doc["note"], "port 23 from 1.2.3");
        assert!(doc["darknet"][0].as_str().unwrap().ends_with("/16"));
        let t = Anonymizer::Truncate { v4: 24, v6: 48 };
        assert_eq!(t.text("192.0.2.77").unwrap(), "192.0.2.0");
        assert_eq!(t.text("2001:db8:1:2::5").unwrap(), "2001:db8:1::");
        let (t, n) = a.scrub("Location: http://192.0.2.1:8080/login at 18:14:44.252, fe80::1 too.");
        assert_eq!(n, 2, "{t}");
        assert!(
            !t.contains("192.0.2.1")
                && !t.contains("fe80::1")
                && t.contains(":8080/login at 18:14:44.252"),
            "{t}"
        );
        let h = Anonymizer::Hash(key);
        assert_ne!(h.text("192.0.2.77").unwrap(), "192.0.2.77");
        assert_eq!(h.text("192.0.2.77"), h.text("192.0.2.77"));
    }

    #[test]
    fn keys_and_cidrs_in_text_lose_their_addresses() {
        let a = Anonymizer::Truncate { v4: 8, v6: 16 };
        let mut doc = serde_json::json!({"IP:203.0.113.7": {"note": "gw fe:203.0.113.9"}});
        assert_eq!(a.json(&mut doc), 2);
        assert_eq!(
            doc,
            serde_json::json!({"IP:203.0.0.0": {"note": "gw fe:203.0.0.0"}})
        );
        // A CIDR keeps its length; a length glued to more address text is
        // not one, and the address after it is replaced too.
        let (t, n) =
            a.scrub("net 198.18.0.0/16, 2001:db8::/32; odd 10.0.0.0/8.1.2.3 and 192.0.2.1/24");
        assert_eq!(n, 5, "{t}");
        assert_eq!(
            t,
            "net 198.0.0.0/16, 2001::/32; odd 10.0.0.0/8.0.0.0 and 192.0.0.0/24"
        );
    }
}
