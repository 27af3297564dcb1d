//! Address prefixes for `--darknet`.

use std::net::IpAddr;
use std::str::FromStr;

use iotscope_wire::Addr;

/// An IPv4 or IPv6 prefix such as `198.18.0.0/15`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// IPv4 network and mask, host order.
    V4 { net: u32, mask: u32 },
    /// IPv6 network and mask, host order.
    V6 { net: u128, mask: u128 },
}

/// A prefix that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid prefix {text:?}: expected ADDRESS/LENGTH such as 198.18.0.0/15 or 2001:db8::/32")]
pub struct PrefixError {
    /// The text given.
    pub text: String,
}

impl std::fmt::Display for Prefix {
    /// `network/length`, as `--darknet` and BPF's `net` take it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Prefix::V4 { net, mask } => {
                write!(f, "{}/{}", std::net::Ipv4Addr::from(net), mask.count_ones())
            }
            Prefix::V6 { net, mask } => {
                write!(f, "{}/{}", std::net::Ipv6Addr::from(net), mask.count_ones())
            }
        }
    }
}

impl Prefix {
    /// True if `addr` lies inside the prefix.
    #[inline]
    pub fn contains(&self, addr: Addr) -> bool {
        match (*self, addr) {
            (Prefix::V4 { net, mask }, Addr::V4(a)) => a & mask == net,
            (Prefix::V6 { net, mask }, Addr::V6(a)) => a & mask == net,
            _ => false,
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PrefixError {
            text: s.to_string(),
        };
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip = IpAddr::from_str(addr.trim()).map_err(|_| err())?;
        match ip {
            IpAddr::V4(v4) => {
                let len: u32 = len
                    .map_or(Ok(32), |l| l.trim().parse())
                    .map_err(|_| err())?;
                if len > 32 {
                    return Err(err());
                }
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Ok(Prefix::V4 {
                    net: u32::from(v4) & mask,
                    mask,
                })
            }
            IpAddr::V6(v6) => {
                let len: u32 = len
                    .map_or(Ok(128), |l| l.trim().parse())
                    .map_err(|_| err())?;
                if len > 128 {
                    return Err(err());
                }
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                Ok(Prefix::V6 {
                    net: u128::from(v6) & mask,
                    mask,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p: Prefix = "198.18.0.0/15".parse().unwrap();
        assert!(p.contains(Addr::V4(u32::from_be_bytes([198, 19, 255, 255]))));
        assert!(!p.contains(Addr::V4(u32::from_be_bytes([198, 20, 0, 0]))));
        let q: Prefix = "2001:db8::/32".parse().unwrap();
        assert!(q.contains(Addr::V6(0x2001_0db8_0000_0000_0000_0000_0000_0001)));
        assert!(!q.contains(Addr::V4(1)));
        assert!("198.18.0.0/33".parse::<Prefix>().is_err());
        assert!("nope/8".parse::<Prefix>().is_err());
        assert_eq!(
            "0.0.0.0/0".parse::<Prefix>().unwrap(),
            Prefix::V4 { net: 0, mask: 0 }
        );
    }
}
