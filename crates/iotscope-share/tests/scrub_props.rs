//! Properties of `Anonymizer::scrub` on random text (issue 14, item 4):
//! addresses embedded at random places with random neighbours never
//! survive, and the images keep Crypto-PAn's prefix property. Only the
//! public `Anonymizer` API is used, so the same tests show the scrubber of
//! any version.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use iotscope_share::{parse_key, Anonymizer, CryptoPan};
use proptest::prelude::*;

/// The Crypto-PAn reference distribution's sample key.
const KEY: &[u8] = b"1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

fn cryptopan() -> Anonymizer {
    Anonymizer::CryptoPan(Box::new(CryptoPan::new(&parse_key(KEY, "k").unwrap())))
}

/// An address as text, and every spelling of it that must not survive.
#[derive(Clone, Debug)]
struct Written {
    text: String,
    secrets: Vec<String>,
}

fn full_v6(a: Ipv6Addr, upper: bool) -> String {
    let s = a
        .segments()
        .iter()
        .map(|g| format!("{g:x}"))
        .collect::<Vec<_>>()
        .join(":");
    if upper {
        s.to_uppercase()
    } else {
        s
    }
}

fn written() -> impl Strategy<Value = Written> {
    prop_oneof![
        any::<u32>().prop_map(|a| {
            let t = Ipv4Addr::from(a).to_string();
            Written {
                text: t.clone(),
                secrets: vec![t],
            }
        }),
        any::<u128>().prop_map(|a| {
            let t = Ipv6Addr::from(a).to_string();
            Written {
                text: t.clone(),
                secrets: vec![t],
            }
        }),
        (any::<u128>(), any::<bool>()).prop_map(|(a, upper)| {
            let t = full_v6(Ipv6Addr::from(a), upper);
            Written {
                text: t.clone(),
                secrets: vec![t],
            }
        }),
        // A 64-bit prefix with a small interface id: "2001:db8:1:2::7".
        (any::<u64>(), 1u16..0xffff).prop_map(|(p, low)| {
            let t = Ipv6Addr::from((u128::from(p) << 64) | u128::from(low)).to_string();
            Written {
                text: t.clone(),
                secrets: vec![t],
            }
        }),
        // IPv4-mapped: neither spelling may stay.
        any::<u32>().prop_map(|a| {
            let v4 = Ipv4Addr::from(a).to_string();
            Written {
                text: format!("::ffff:{v4}"),
                secrets: vec![format!("::ffff:{v4}"), v4],
            }
        }),
    ]
}

/// Neighbours: address characters, URL and banner punctuation, letters.
fn neighbour() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F.:]{0,5}",
        "[ -~]{0,6}",
        "[g-zG-Z=\\[\\]/%@ ]{0,4}",
        Just("IP:".to_string()),
        Just("address:".to_string()),
        Just("http://[".to_string()),
        Just("]:8080/".to_string()),
        Just("%eth0".to_string()),
        Just("/24".to_string()),
        Just("\u{e9}\u{3000}\n".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No embedded address survives in any spelling it was written in.
    #[test]
    fn no_embedded_address_survives_the_scrub(
        parts in prop::collection::vec((neighbour(), written(), neighbour()), 1..6),
        hash in any::<bool>(),
    ) {
        let a = if hash {
            Anonymizer::Hash(parse_key(KEY, "k").unwrap())
        } else {
            cryptopan()
        };
        let text: String = parts.iter().map(|(l, w, r)| format!("{l}{}{r}", w.text)).collect();
        let (out, n) = a.scrub(&text);
        prop_assert!(n >= 1, "nothing replaced in {text:?}");
        for (_, w, _) in &parts {
            for secret in &w.secrets {
                // Crypto-PAn is a permutation of the addresses, and about
                // one address in 2^32 is its own image (136.115.121.228
                // under the reference key): it is replaced, by itself. Only
                // such an address may be found again, and only when the
                // scrubber did find and replace it on its own.
                let (alone, found) = a.scrub(secret);
                let fixed_point = found >= 1 && alone == *secret;
                prop_assert!(
                    !out.contains(secret.as_str()) || fixed_point,
                    "{secret} survived: {text:?} -> {out:?}"
                );
            }
        }
    }

    /// Two addresses sharing exactly k leading bits, written in text with
    /// neighbours that do not extend them, come out as their Crypto-PAn
    /// images, which share exactly k leading bits.
    #[test]
    fn images_in_text_keep_shared_prefixes(
        v6 in any::<bool>(),
        x in any::<u128>(),
        noise in any::<u128>(),
        k in 0u32..128,
        left in prop::sample::select(vec!["IP:", "address:", " ", "[", "=", "(", "\n", "host "]),
        right in prop::sample::select(vec![" ", "]:8080", ",", ")", "/x", ".", "\r\n"]),
    ) {
        let a = cryptopan();
        let (width, k) = if v6 { (128, k) } else { (32, k % 32) };
        let x = if v6 { x } else { x & 0xffff_ffff };
        // y: x's first k bits, bit k flipped, the rest random.
        let rest_mask = if k + 1 >= width { 0 } else { (1u128 << (width - k - 1)) - 1 };
        let y = (x ^ (1u128 << (width - k - 1))) & !rest_mask | (noise & rest_mask);
        let ip = |v: u128| -> IpAddr {
            if v6 { Ipv6Addr::from(v).into() } else { Ipv4Addr::from(v as u32).into() }
        };
        let (xi, yi) = (ip(x), ip(y));
        let text = format!("{left}{xi}{right} peer {left}{yi}{right}");
        let (out, n) = a.scrub(&text);
        let (xa, ya) = (a.ip(xi), a.ip(yi));
        prop_assert_eq!(n, 2);
        prop_assert_eq!(out, format!("{left}{xa}{right} peer {left}{ya}{right}"));
        let bits = |v: IpAddr| -> u128 {
            match v {
                IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
                IpAddr::V6(a) => u128::from(a),
            }
        };
        let shared = (bits(xa) ^ bits(ya)).leading_zeros();
        prop_assert_eq!(shared, k, "{} {} -> {} {}", xi, yi, xa, ya);
    }
}

/// The reproducer's banner and title, and addresses in URLs, ports, zones
/// and CIDRs.
#[test]
fn the_reproducers_shapes_lose_their_addresses() {
    let a = cryptopan();
    let text = "Camera IP:203.0.113.7 gw fe:203.0.113.9\r\nWAN address:198.51.100.23\r\nLAN IP=192.168.1.1\r\nabc203.0.113.10\r\nhttp://[2001:db8::1]:8080/ fe80::1%eth0 net 198.18.0.0/16 2001:db8:1::/48 ::ffff:192.0.2.1 192.168.001.001";
    let (out, n) = a.scrub(text);
    assert_eq!(n, 11, "{out}");
    for secret in [
        "203.0.113.7",
        "203.0.113.9",
        "198.51.100.23",
        "192.168.1.1",
        "203.0.113.10",
        "2001:db8::1",
        "fe80::1",
        "198.18.0.0",
        "2001:db8:1::",
        "192.0.2.1",
        "192.168.001.001",
    ] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
    // The text around them stays; CIDRs keep their length, zones and ports stay.
    for kept in [
        "Camera IP:",
        " gw fe:",
        "WAN address:",
        "\r\nabc",
        "]:8080/ ",
        "%eth0 net ",
        "/16 ",
        "/48 ",
    ] {
        assert!(out.contains(kept), "{kept:?} lost: {out}");
    }
    assert!(out.contains(&format!(
        "{}/16",
        a.text("198.18.0.0/16").unwrap().split('/').next().unwrap()
    )));
}
