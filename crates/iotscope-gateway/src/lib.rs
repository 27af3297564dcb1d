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

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// Reads each configured device's MUD file (`None` for a device without
/// one), in `[[gateway.device]]` order.
///
/// Errors: [`mud::MudError`] for a file that cannot be read or used: a
/// device whose file is missing would otherwise fall back to the default
/// policy without anyone noticing.
pub fn load_muds(gw: &Gateway) -> Result<Vec<Option<mud::Mud>>, mud::MudError> {
    gw.device
        .iter()
        .map(|d| {
            let Some(path) = &d.mud else { return Ok(None) };
            let file = path.display().to_string();
            let meta = std::fs::metadata(path).map_err(|e| mud::MudError {
                file: file.clone(),
                message: e.to_string(),
            })?;
            if meta.len() > mud::MAX_MUD_BYTES as u64 {
                return Err(mud::MudError {
                    file,
                    message: format!("larger than {} bytes", mud::MAX_MUD_BYTES),
                });
            }
            let text = std::fs::read_to_string(path).map_err(|e| mud::MudError {
                file: file.clone(),
                message: e.to_string(),
            })?;
            mud::parse(&text, &file).map(Some)
        })
        .collect()
}

/// The host names the MUD files' ACEs use.
pub fn mud_names(muds: &[Option<mud::Mud>]) -> BTreeSet<String> {
    muds.iter()
        .flatten()
        .flat_map(|m| m.from_device.iter().chain(&m.to_device))
        .flat_map(|a| [a.src_dnsname.clone(), a.dst_dnsname.clone()])
        .flatten()
        .collect()
}

/// Turns a host name into addresses.
pub trait Resolver {
    /// The name's addresses (none when it does not resolve).
    fn resolve(&self, name: &str) -> Vec<IpAddr>;
}

/// The system's resolver (getaddrinfo), each name given at most `timeout`
/// (a resolver that does not answer would otherwise hold the plan).
pub struct SystemResolver {
    /// Most time per name.
    pub timeout: Duration,
}

impl Resolver for SystemResolver {
    fn resolve(&self, name: &str) -> Vec<IpAddr> {
        use std::net::ToSocketAddrs;
        let (tx, rx) = std::sync::mpsc::channel();
        let n = name.to_string();
        std::thread::spawn(move || {
            let r: Vec<IpAddr> = (n.as_str(), 0)
                .to_socket_addrs()
                .map(|it| it.map(|a| a.ip()).collect())
                .unwrap_or_default();
            let _ = tx.send(r);
        });
        rx.recv_timeout(self.timeout).unwrap_or_default()
    }
}

/// Addresses of `names`: `[gateway] hosts` first, then `resolver`.
pub fn resolve_names(
    names: &BTreeSet<String>,
    hosts: &BTreeMap<String, Vec<IpAddr>>,
    resolver: &dyn Resolver,
) -> BTreeMap<String, Vec<IpAddr>> {
    names
        .iter()
        .map(|n| {
            let addrs = match hosts.get(n) {
                Some(a) => a.clone(),
                None => resolver.resolve(n),
            };
            (n.clone(), addrs)
        })
        .collect()
}

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
