//! The IoT secure gateway (the seed's installation-stage measure): an
//! nftables ruleset in front of IoT devices that refuses what they should
//! never do, fed by what the observatory knows.
//!
//! - [`config`]: `[gateway]` in TOML, checked before anything reaches nft;
//! - [`mud`]: RFC 8520 MUD files (with RFC 8519 access lists);
//! - [`ruleset`]: the `inet iotscope` table, its sets and chains;
//! - [`nft`]: apply, rollback and remove through `nft`, never touching a
//!   table the gateway did not make;
//! - [`quarantine`]: which LAN hosts scan, from live packets;
//! - [`status`]: counters, sets, quarantined hosts and seen devices.
//!
//! Limits: the table filters what crosses the gateway (routed traffic);
//! two devices on one switch or bridge reach each other without it, so
//! their local-network rules hold only where the LAN is routed or the
//! bridge sends its traffic through the gateway.

pub mod config;
pub mod mud;
pub mod nft;
pub mod quarantine;
pub mod ruleset;
pub mod status;

pub use config::{Gateway, GatewayConfig};
pub use ruleset::{Inputs, Plan};

use std::net::IpAddr;

/// The C&C addresses among a blocklist's values and a honeypot's download
/// hosts: IP literals only (a name is left to the DNS side, `blocklist
/// export --format rpz`, because resolving attacker names at the gateway
/// would ask the attacker's DNS). Returns (address, source) and how many
/// names were left out.
pub fn cc_addresses<'a>(
    values: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (Vec<(IpAddr, String)>, usize) {
    let mut out = Vec::new();
    let mut names = 0;
    for (value, source) in values {
        let v = value.trim().trim_start_matches('[').trim_end_matches(']');
        match v.parse::<IpAddr>() {
            Ok(ip) => out.push((ip, source.to_string())),
            Err(_) => names += 1,
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    (out, names)
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_not_names() {
        let (cc, names) = super::cc_addresses([
            ("198.19.200.10", "feodo"),
            ("[2001:db8::1]", "honeypot"),
            ("cnc.example", "urlhaus"),
            ("198.19.200.10", "honeypot"),
        ]);
        assert_eq!(cc.len(), 2);
        assert_eq!(names, 1);
    }
}
