//! Sharing data between organisations without sharing who is who:
//! addresses replaced by their Crypto-PAn images (prefix-preserving), by a
//! prefix (truncation), or by a keyed hash, in single addresses, in CIDR
//! strings and anywhere inside an exported JSON document.

pub mod cryptopan;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use cryptopan::CryptoPan;

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
        let image = self.ip(ip);
        let masked: IpAddr = match image {
            IpAddr::V4(a) if len <= 32 => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Ipv4Addr::from(u32::from(a) & mask).into()
            }
            IpAddr::V6(a) if len <= 128 => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                Ipv6Addr::from(u128::from(a) & mask).into()
            }
            _ => return None,
        };
        Some(format!("{masked}/{len}"))
    }

    /// Replaces addresses written inside free text (a URL, a banner): every
    /// run of address characters that parses as an address. Returns the new
    /// text and how many were replaced.
    pub fn scrub(&self, s: &str) -> (String, usize) {
        let is_addr_char = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
        let mut out = String::with_capacity(s.len());
        let mut n = 0;
        let mut rest = s;
        while let Some(start) = rest.find(is_addr_char) {
            out.push_str(&rest[..start]);
            let run = &rest[start..];
            let end = run.find(|c: char| !is_addr_char(c)).unwrap_or(run.len());
            let token = &run[..end];
            // A trailing dot or colon (end of a sentence, "host:port") is not part of it.
            let trimmed = token.trim_end_matches(['.', ':']);
            match trimmed.parse::<IpAddr>() {
                Ok(ip)
                    if trimmed.contains('.')
                        || trimmed.contains("::")
                        || trimmed.matches(':').count() >= 2 =>
                {
                    out.push_str(&self.ip(ip).to_string());
                    out.push_str(&token[trimmed.len()..]);
                    n += 1;
                }
                _ => {
                    // "192.0.2.1:8080": an IPv4 address with a port.
                    let head = trimmed.split(':').next().unwrap_or("");
                    match head.parse::<Ipv4Addr>() {
                        Ok(v4) if head.len() < trimmed.len() => {
                            out.push_str(&self.ip(v4.into()).to_string());
                            out.push_str(&token[head.len()..]);
                            n += 1;
                        }
                        _ => out.push_str(token),
                    }
                }
            }
            rest = &run[end..];
        }
        out.push_str(rest);
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
                    let k2 = match self.text(&k) {
                        Some(t) => {
                            n += 1;
                            t
                        }
                        None => k,
                    };
                    o.insert(k2, val);
                }
                n
            }
            _ => 0,
        }
    }
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
}
