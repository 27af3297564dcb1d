//! Crypto-PAn: prefix-preserving address anonymisation (Xu, Fan, Ammar and
//! Moon, 2002), byte-for-byte compatible with the reference implementation
//! for IPv4, and its natural 128-bit extension for IPv6 (as in the common
//! Go and Python implementations).
//!
//! Bit `i` of the image is bit `i` of the address XOR the first bit of
//! AES(key, the address's first `i` bits followed by the pad's remaining
//! bits), where the pad is AES(key, second half of the secret). Two
//! addresses that share a k-bit prefix therefore share a k-bit prefix in
//! their images, and nothing else is revealed.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;

/// A Crypto-PAn instance for one 32-byte secret.
#[derive(Clone)]
pub struct CryptoPan {
    aes: Aes128,
    pad: [u8; 16],
}

impl std::fmt::Debug for CryptoPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CryptoPan { .. }") // never print key material
    }
}

impl CryptoPan {
    /// From the 32-byte secret: the first half keys AES-128, the second
    /// half (encrypted) is the pad.
    pub fn new(secret: &[u8; 32]) -> CryptoPan {
        let aes = Aes128::new_from_slice(&secret[..16]).expect("16-byte key");
        let mut pad = [0u8; 16];
        pad.copy_from_slice(&secret[16..]);
        let mut block = pad.into();
        aes.encrypt_block(&mut block);
        pad.copy_from_slice(&block);
        CryptoPan { aes, pad }
    }

    fn first_bit(&self, input: [u8; 16]) -> u8 {
        let mut block = input.into();
        self.aes.encrypt_block(&mut block);
        block[0] >> 7
    }

    /// The image of an IPv4 address.
    pub fn anonymize_v4(&self, addr: u32) -> u32 {
        let pad = u32::from_be_bytes([self.pad[0], self.pad[1], self.pad[2], self.pad[3]]);
        let mut result = 0u32;
        for pos in 0..32 {
            // The address's first `pos` bits, then the pad's.
            let keep = if pos == 0 { 0 } else { u32::MAX << (32 - pos) };
            let mixed = (addr & keep) | (pad & !keep);
            let mut input = self.pad;
            input[..4].copy_from_slice(&mixed.to_be_bytes());
            result |= (self.first_bit(input) as u32) << (31 - pos);
        }
        result ^ addr
    }

    /// The image of an IPv6 address.
    pub fn anonymize_v6(&self, addr: u128) -> u128 {
        let pad = u128::from_be_bytes(self.pad);
        let mut result = 0u128;
        for pos in 0..128 {
            let keep = if pos == 0 {
                0
            } else {
                u128::MAX << (128 - pos)
            };
            let mixed = (addr & keep) | (pad & !keep);
            result |= (self.first_bit(mixed.to_be_bytes()) as u128) << (127 - pos);
        }
        result ^ addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The sample key of the Crypto-PAn reference distribution.
    pub const REFERENCE_KEY: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131,
        121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];

    #[test]
    fn matches_the_reference_sample_trace() {
        // From sample_trace_raw.dat / sample_trace_sanitized.dat of the
        // reference distribution (a selection).
        let pan = CryptoPan::new(&REFERENCE_KEY);
        for (a, b) in [
            ("128.11.68.132", "135.242.180.132"),
            ("129.118.74.4", "134.136.186.123"),
            ("130.132.252.244", "133.68.164.234"),
            ("141.223.7.43", "141.167.8.160"),
            ("152.163.225.39", "151.140.114.167"),
            ("192.102.249.13", "252.138.62.131"),
            ("195.205.63.100", "255.186.223.5"),
            ("24.0.250.221", "100.15.198.226"),
            ("4.3.88.225", "124.60.155.63"),
            ("64.14.118.196", "0.255.183.58"),
            ("10.185.25.118", "117.161.29.118"),
        ] {
            let a: Ipv4Addr = a.parse().unwrap();
            let got = Ipv4Addr::from(pan.anonymize_v4(a.into()));
            assert_eq!(got.to_string(), b, "{a}");
        }
    }

    #[test]
    fn ipv6_matches_the_go_and_python_implementations() {
        let pan = CryptoPan::new(&REFERENCE_KEY);
        for (a, b) in [
            ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
            ("::2", "78ff:f001:9fc0:20df:8380:b1f1:704:ef"),
            ("::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838"),
            ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
            ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
        ] {
            let a: Ipv6Addr = a.parse().unwrap();
            let got = Ipv6Addr::from(pan.anonymize_v6(a.into()));
            assert_eq!(got, b.parse::<Ipv6Addr>().unwrap(), "{a}");
        }
    }

    #[test]
    fn prefixes_are_preserved_exactly() {
        let pan = CryptoPan::new(&REFERENCE_KEY);
        let (a, b) = (0xc612_0a05u32, 0xc612_0bffu32); // share 22 bits
        let (x, y) = (pan.anonymize_v4(a), pan.anonymize_v4(b));
        assert_eq!((a ^ b).leading_zeros(), (x ^ y).leading_zeros());
    }
}
