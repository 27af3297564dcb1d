//! `[gateway]`: what the gateway protects and how (TOML). Every value that
//! reaches the nftables script is checked here, so the script never carries
//! text from the file that could change its meaning (an interface name with
//! a quote or a brace, a device name with a newline).
//!
//! ```toml
//! [gateway]
//! lan_interface = "lan0"
//! wan_interface = "wan0"
//! lan_address = "192.168.1.1"          # the gateway on the LAN (DNS, notice page)
//! lan_prefixes = ["192.168.1.0/24"]
//! db = "/var/lib/iotscope/iotscope.db"  # the store the C&C blocklist comes from
//! mud_dir = "/etc/iotscope/mud"
//! state_dir = "/var/lib/iotscope/gateway"
//! dns = "redirect"                      # redirect | block | allow
//! default_policy = "allow"              # devices without a MUD file: allow | internet | deny
//!
//! [gateway.management]
//! ports = [22]
//! from = ["192.168.1.0/24"]
//!
//! [[gateway.forward]]
//! proto = "tcp"
//! port = 8443
//! to = "192.168.1.20"
//!
//! [[gateway.device]]
//! name = "camera"
//! mac = "02:00:00:00:00:20"
//! address = "192.168.1.20"
//! mud = "camera.json"
//!
//! [gateway.quarantine]
//! threshold = 32    # distinct destinations
//! window = "60s"
//! timeout = "1h"
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use iotscope_telescope::Prefix;
use iotscope_wire::Addr;
use serde::Deserialize;

/// Ports never forwarded from the WAN whatever the file says: telnet and
/// its Mirai alternative (RFC 854; Mirai's scanner.c tries 23 and 2323).
pub const TELNET_PORTS: [u16; 2] = [23, 2323];

/// A configuration the gateway refuses, with the key at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("[gateway] {key}: {message}")]
pub struct ConfigError {
    /// The key (`lan_interface`, `device[2].mac`).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// How direct DNS from LAN devices to outside resolvers is handled
/// (Mirai's resolver code asks 8.8.8.8 itself instead of the LAN's).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DnsMode {
    /// Rewritten to the gateway's own resolver (`lan_address`, port 53).
    #[default]
    Redirect,
    /// Dropped; devices must use the gateway or a listed resolver.
    Block,
    /// Not touched.
    Allow,
}

/// What a LAN device without a MUD file may do.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DefaultPolicy {
    /// Anything (still subject to the C&C sets, DNS and quarantine).
    #[default]
    Allow,
    /// Connections to the internet, none to other LAN devices.
    Internet,
    /// Nothing but what the gateway itself serves (DNS, DHCP).
    Deny,
}

/// `[gateway.management]`: who may reach the gateway's own services.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Management {
    /// TCP ports of the gateway's management (SSH, a web UI).
    #[serde(default = "default_management_ports")]
    pub ports: Vec<u16>,
    /// Source prefixes allowed to them (default: `lan_prefixes`).
    #[serde(default)]
    pub from: Vec<String>,
}

fn default_management_ports() -> Vec<u16> {
    vec![22]
}

impl Default for Management {
    fn default() -> Self {
        Management {
            ports: default_management_ports(),
            from: Vec::new(),
        }
    }
}

/// `[[gateway.forward]]`: one declared port forward from the WAN.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The WAN port.
    pub port: u16,
    /// The LAN device.
    pub to: IpAddr,
    /// Its port (default: `port`).
    pub to_port: Option<u16>,
}

/// `[[gateway.device]]`: a LAN device, its MUD file and its controllers.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// A name for people (letters, digits, `-`, `_`, `.`, space).
    pub name: String,
    /// Its MAC address (`02:00:00:00:00:20`).
    pub mac: Option<String>,
    /// Its address (needed for rules toward the device).
    pub address: Option<IpAddr>,
    /// Its MUD file, relative to `mud_dir`.
    pub mud: Option<String>,
    /// Addresses of its controllers (RFC 8520 `my-controller`).
    #[serde(default)]
    pub controller: Vec<IpAddr>,
}

/// `[gateway.quarantine]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuarantineConfig {
    /// Distinct destination addresses a LAN host may send TCP SYNs to
    /// within `window` before it is quarantined.
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// The window (humantime: `60s`, `5m`).
    #[serde(default = "default_window")]
    pub window: String,
    /// How long a quarantine lasts.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Only SYNs to these ports count (empty: every port).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// The gateway's port for the notice page quarantined hosts see.
    #[serde(default = "default_notice_port")]
    pub notice_port: u16,
    /// Prefixes never quarantined (the owner's own scanner, a backup box).
    #[serde(default)]
    pub exempt: Vec<String>,
}

fn default_threshold() -> u32 {
    32
}
fn default_window() -> String {
    "60s".into()
}
fn default_timeout() -> String {
    "1h".into()
}
fn default_notice_port() -> u16 {
    8089
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            threshold: default_threshold(),
            window: default_window(),
            timeout: default_timeout(),
            ports: Vec::new(),
            notice_port: default_notice_port(),
            exempt: Vec::new(),
        }
    }
}

/// `[gateway]` as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The LAN interface (where the IoT devices are).
    #[serde(default)]
    pub lan_interface: String,
    /// The WAN interface (toward the internet).
    #[serde(default)]
    pub wan_interface: String,
    /// The gateway's own address on the LAN.
    pub lan_address: Option<IpAddr>,
    /// The LAN's prefixes (RFC 8520 `local-networks`; quarantine watches
    /// only sources in them).
    #[serde(default)]
    pub lan_prefixes: Vec<String>,
    /// The store the C&C blocklist comes from.
    pub db: Option<PathBuf>,
    /// Where the MUD files named by `[[gateway.device]] mud` are.
    pub mud_dir: Option<PathBuf>,
    /// A dnsmasq lease file read for new devices besides the neighbour
    /// tables (the DHCP hook).
    pub leases: Option<PathBuf>,
    /// Where the gateway keeps the previous ruleset, the quarantine log
    /// and the devices it has seen.
    pub state_dir: Option<PathBuf>,
    /// Direct DNS to outside resolvers.
    #[serde(default)]
    pub dns: DnsMode,
    /// Outside resolvers LAN devices may still query directly.
    #[serde(default)]
    pub resolvers: Vec<IpAddr>,
    /// Devices without a MUD file.
    #[serde(default)]
    pub default_policy: DefaultPolicy,
    /// C&C addresses the operator adds to the store's.
    #[serde(default)]
    pub block: Vec<IpAddr>,
    /// Prefixes never blocked, whatever a feed says.
    #[serde(default)]
    pub allow: Vec<String>,
    /// How often `gateway run` refreshes the sets (humantime).
    #[serde(default = "default_refresh")]
    pub refresh: String,
    /// Names in MUD files resolved here before the system resolver.
    #[serde(default)]
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    /// RFC 8520 `controller` URIs and their addresses.
    #[serde(default)]
    pub controllers: BTreeMap<String, Vec<IpAddr>>,
    /// `[gateway.management]`.
    #[serde(default)]
    pub management: Management,
    /// `[[gateway.forward]]`.
    #[serde(default)]
    pub forward: Vec<Forward>,
    /// `[[gateway.device]]`.
    #[serde(default)]
    pub device: Vec<Device>,
    /// `[gateway.quarantine]`.
    #[serde(default)]
    pub quarantine: QuarantineConfig,
}

fn default_refresh() -> String {
    "15m".into()
}

/// A device as checked: name, MAC (lower case), address, MUD file path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedDevice {
    /// Its name.
    pub name: String,
    /// MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// Address.
    pub address: Option<IpAddr>,
    /// The MUD file (under `mud_dir`).
    pub mud: Option<PathBuf>,
    /// `my-controller` addresses.
    pub controller: Vec<IpAddr>,
}

/// The configuration after every check: durations parsed, prefixes
/// parsed, names safe to write into the ruleset.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// LAN interface.
    pub lan_interface: String,
    /// WAN interface.
    pub wan_interface: String,
    /// The gateway's LAN address.
    pub lan_address: Option<IpAddr>,
    /// LAN prefixes (at least one).
    pub lan_prefixes: Vec<Prefix>,
    /// The store.
    pub db: Option<PathBuf>,
    /// dnsmasq lease file.
    pub leases: Option<PathBuf>,
    /// State folder.
    pub state_dir: PathBuf,
    /// DNS handling.
    pub dns: DnsMode,
    /// Outside resolvers allowed.
    pub resolvers: Vec<IpAddr>,
    /// Devices without MUD.
    pub default_policy: DefaultPolicy,
    /// Operator's C&C addresses.
    pub block: Vec<IpAddr>,
    /// Never blocked.
    pub allow: Vec<Prefix>,
    /// Set refresh interval.
    pub refresh: Duration,
    /// Static names.
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    /// Controllers.
    pub controllers: BTreeMap<String, Vec<IpAddr>>,
    /// Management ports.
    pub management_ports: Vec<u16>,
    /// Management sources.
    pub management_from: Vec<Prefix>,
    /// Forwards.
    pub forward: Vec<Forward>,
    /// Devices.
    pub device: Vec<CheckedDevice>,
    /// Quarantine threshold (distinct destinations).
    pub threshold: u32,
    /// Quarantine window.
    pub window: Duration,
    /// Quarantine length.
    pub timeout: Duration,
    /// Ports counted (empty: all).
    pub quarantine_ports: Vec<u16>,
    /// Notice page port.
    pub notice_port: u16,
    /// Never quarantined.
    pub exempt: Vec<Prefix>,
}

/// An interface name as Linux takes it (IFNAMSIZ: at most 15 bytes) and
/// nothing that could end a quoted string in the ruleset.
fn interface(key: &str, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() {
        return Err(err(key, "missing: the interface name (ip link shows them)"));
    }
    if name.len() > 15
        || name == "."
        || name == ".."
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    {
        return Err(err(
            key,
            format!("{name:?} is not an interface name (at most 15 letters, digits, -, _, ., @)"),
        ));
    }
    Ok(name.to_string())
}

fn prefixes(key: &str, list: &[String]) -> Result<Vec<Prefix>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            p.parse::<Prefix>()
                .map_err(|e| err(format!("{key}[{i}]"), e.to_string()))
        })
        .collect()
}

fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| err(key, format!("{text:?}: {e} (write 60s, 5m, 1h)")))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(30 * 86_400) {
        return Err(err(key, format!("{text:?}: between 1s and 30 days")));
    }
    Ok(d)
}

/// Lower-case `aa:bb:cc:dd:ee:ff` from `AA:BB:..` or `aa-bb-..`.
pub fn parse_mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.trim().split([':', '-']).collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(parts.join(":").to_ascii_lowercase())
}

/// True when `ip` lies in one of `list`.
pub fn within(list: &[Prefix], ip: IpAddr) -> bool {
    let a = Addr::from(ip);
    list.iter().any(|p| p.contains(a))
}

impl GatewayConfig {
    /// Parses `[gateway]` out of a whole TOML file (other tables are left
    /// to their owners).
    ///
    /// Errors: the TOML error, or a missing `[gateway]` table.
    pub fn from_toml(text: &str) -> Result<GatewayConfig, ConfigError> {
        #[derive(Deserialize)]
        struct Whole {
            gateway: Option<GatewayConfig>,
        }
        let whole: Whole = toml::from_str(text).map_err(|e| err("(file)", e.to_string()))?;
        whole
            .gateway
            .ok_or_else(|| err("(file)", "no [gateway] table"))
    }

    /// Checks every key and gives the [`Gateway`] the ruleset is planned
    /// from.
    ///
    /// Errors: [`ConfigError`] naming the first key at fault: interface
    /// names, prefixes, durations, a forward of a telnet port or to an
    /// address outside the LAN, a device without MAC or address, a MUD file
    /// name that leaves `mud_dir`, no management port.
    pub fn check(&self) -> Result<Gateway, ConfigError> {
        let lan_interface = interface("lan_interface", &self.lan_interface)?;
        let wan_interface = interface("wan_interface", &self.wan_interface)?;
        if lan_interface == wan_interface {
            return Err(err(
                "wan_interface",
                "the same as lan_interface: the gateway sits between two interfaces",
            ));
        }
        let lan_prefixes = prefixes("lan_prefixes", &self.lan_prefixes)?;
        if lan_prefixes.is_empty() {
            return Err(err(
                "lan_prefixes",
                "missing: the LAN's prefixes, such as [\"192.168.1.0/24\"]",
            ));
        }
        if let Some(a) = self.lan_address {
            if !within(&lan_prefixes, a) {
                return Err(err("lan_address", format!("{a} is not in lan_prefixes")));
            }
        } else if self.dns == DnsMode::Redirect {
            return Err(err(
                "lan_address",
                "missing: dns = \"redirect\" sends DNS to the gateway's LAN address",
            ));
        }
        let allow = prefixes("allow", &self.allow)?;
        let management_from = if self.management.from.is_empty() {
            lan_prefixes.clone()
        } else {
            prefixes("management.from", &self.management.from)?
        };
        if self.management.ports.is_empty() || self.management.ports.contains(&0) {
            return Err(err(
                "management.ports",
                "at least one port (0 is none): without one the ruleset would cut every way into the gateway",
            ));
        }
        for (i, f) in self.forward.iter().enumerate() {
            let key = format!("forward[{i}]");
            if f.proto != "tcp" && f.proto != "udp" {
                return Err(err(key, format!("proto {:?}: tcp or udp", f.proto)));
            }
            let to_port = f.to_port.unwrap_or(f.port);
            if f.port == 0 || to_port == 0 {
                return Err(err(key, "port 0"));
            }
            if f.proto == "tcp"
                && (TELNET_PORTS.contains(&to_port) || TELNET_PORTS.contains(&f.port))
            {
                return Err(err(
                    key,
                    format!(
                        "telnet ({}) is never forwarded: it is how Mirai and its kind get in",
                        to_port
                    ),
                ));
            }
            if !within(&lan_prefixes, f.to) {
                return Err(err(key, format!("{} is not in lan_prefixes", f.to)));
            }
            if self.management.ports.contains(&f.port) && f.proto == "tcp" {
                return Err(err(
                    key,
                    format!("port {} is the gateway's own management port", f.port),
                ));
            }
        }
        let mut device = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, d) in self.device.iter().enumerate() {
            let key = format!("device[{i}]");
            if d.name.is_empty()
                || d.name.len() > 64
                || !d
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_. ".contains(&b))
            {
                return Err(err(
                    format!("{key}.name"),
                    format!("{:?}: 1-64 letters, digits, -, _, . or spaces", d.name),
                ));
            }
            if !names.insert(d.name.clone()) {
                return Err(err(format!("{key}.name"), format!("{:?} twice", d.name)));
            }
            let mac = match &d.mac {
                Some(m) => Some(parse_mac(m).ok_or_else(|| {
                    err(format!("{key}.mac"), format!("{m:?} is not a MAC address"))
                })?),
                None => None,
            };
            if mac.is_none() && d.address.is_none() {
                return Err(err(key, "needs a mac or an address"));
            }
            if let Some(a) = d.address {
                if !within(&lan_prefixes, a) {
                    return Err(err(
                        format!("{key}.address"),
                        format!("{a} is not in lan_prefixes"),
                    ));
                }
            }
            let mud = match &d.mud {
                Some(file) => {
                    let dir = self.mud_dir.as_ref().ok_or_else(|| {
                        err(
                            format!("{key}.mud"),
                            "needs mud_dir, the folder MUD files are in",
                        )
                    })?;
                    // A plain file name: the file cannot name a path
                    // outside the folder the operator chose.
                    let p = std::path::Path::new(file);
                    if file.is_empty()
                        || p.components().count() != 1
                        || !matches!(p.components().next(), Some(std::path::Component::Normal(_)))
                    {
                        return Err(err(
                            format!("{key}.mud"),
                            format!("{file:?}: a file name inside mud_dir"),
                        ));
                    }
                    Some(dir.join(file))
                }
                None => None,
            };
            device.push(CheckedDevice {
                name: d.name.clone(),
                mac,
                address: d.address,
                mud,
                controller: d.controller.clone(),
            });
        }
        let q = &self.quarantine;
        if q.threshold > 10_000 {
            return Err(err(
                "quarantine.threshold",
                "at most 10000 distinct destinations (the watcher keeps that many per host)",
            ));
        }
        if q.threshold < 2 {
            return Err(err(
                "quarantine.threshold",
                "at least 2 distinct destinations (1 would quarantine every device that connects anywhere)",
            ));
        }
        if q.notice_port == 0 || self.management.ports.contains(&q.notice_port) {
            return Err(err(
                "quarantine.notice_port",
                "a free port other than the management ports",
            ));
        }
        let exempt = {
            // The gateway itself and single management hosts are never
            // quarantined: one forged SYN must not cut the way in.
            let mut e = prefixes("quarantine.exempt", &q.exempt)?;
            if let Some(a) = self.lan_address {
                e.push(a.to_string().parse().map_err(
                    |e: iotscope_telescope::prefix::PrefixError| err("lan_address", e.to_string()),
                )?);
            }
            // Management hosts named one by one (a /32 or /128); a whole
            // prefix is not exempted, or the default (the LAN) would exempt
            // every device. Forged frames are refused by `gateway run`'s
            // neighbour-table check.
            e.extend(management_from.iter().copied().filter(|p| match p {
                Prefix::V4 { mask, .. } => *mask == u32::MAX,
                Prefix::V6 { mask, .. } => *mask == u128::MAX,
            }));
            e
        };
        Ok(Gateway {
            lan_interface,
            wan_interface,
            lan_address: self.lan_address,
            lan_prefixes,
            db: self.db.clone(),
            leases: self.leases.clone(),
            state_dir: self
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("/var/lib/iotscope/gateway")),
            dns: self.dns,
            resolvers: self.resolvers.clone(),
            default_policy: self.default_policy,
            block: self.block.clone(),
            allow,
            refresh: duration("refresh", &self.refresh)?,
            hosts: self
                .hosts
                .iter()
                .map(|(k, v)| {
                    crate::mud::host_name(k)
                        .map(|n| (n, v.clone()))
                        .ok_or_else(|| err(format!("hosts.{k:?}"), "not a host name"))
                })
                .collect::<Result<_, _>>()?,
            controllers: self.controllers.clone(),
            management_ports: self.management.ports.clone(),
            management_from,
            forward: self.forward.clone(),
            device,
            threshold: q.threshold,
            window: duration("quarantine.window", &q.window)?,
            timeout: duration("quarantine.timeout", &q.timeout)?,
            quarantine_ports: q.ports.clone(),
            notice_port: q.notice_port,
            exempt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> String {
        "[gateway]\nlan_interface = \"lan0\"\nwan_interface = \"wan0\"\nlan_address = \"198.18.1.1\"\nlan_prefixes = [\"198.18.1.0/24\"]\n".into()
    }

    fn check(extra: &str) -> Result<Gateway, ConfigError> {
        GatewayConfig::from_toml(&(base() + extra))?.check()
    }

    #[test]
    fn a_minimal_file_has_safe_defaults() {
        let g = check("").unwrap();
        assert_eq!(g.management_ports, vec![22]);
        assert_eq!(g.management_from, g.lan_prefixes);
        assert_eq!(g.dns, DnsMode::Redirect);
        assert_eq!(g.window, Duration::from_secs(60));
        assert_eq!(g.timeout, Duration::from_secs(3600));
    }

    #[test]
    fn names_that_could_change_the_script_are_refused() {
        let e = GatewayConfig::from_toml(
            "[gateway]\nlan_interface = \"lan0\\\" accept\"\nwan_interface = \"w\"\nlan_prefixes=[\"198.18.1.0/24\"]\ndns=\"block\"",
        )
        .unwrap()
        .check()
        .unwrap_err();
        assert_eq!(e.key, "lan_interface");
        let e = check("[[gateway.device]]\nname = \"cam\\n}\"\naddress = \"198.18.1.5\"\n")
            .unwrap_err();
        assert_eq!(e.key, "device[0].name");
        let e = check("mud_dir = \"/m\"\n[[gateway.device]]\nname = \"cam\"\naddress = \"198.18.1.5\"\nmud = \"../../etc/passwd\"\n").unwrap_err();
        assert_eq!(e.key, "device[0].mud");
    }

    #[test]
    fn telnet_is_never_forwarded_and_forwards_stay_in_the_lan() {
        let e = check("[[gateway.forward]]\nproto = \"tcp\"\nport = 8023\nto = \"198.18.1.5\"\nto_port = 23\n").unwrap_err();
        assert_eq!(e.key, "forward[0]");
        assert!(e.message.contains("telnet"), "{e}");
        let e = check("[[gateway.forward]]\nproto = \"tcp\"\nport = 80\nto = \"198.19.1.5\"\n")
            .unwrap_err();
        assert!(e.message.contains("not in lan_prefixes"), "{e}");
        assert!(
            check("[[gateway.forward]]\nproto = \"tcp\"\nport = 8443\nto = \"198.18.1.5\"\n")
                .is_ok()
        );
    }

    #[test]
    fn management_cannot_be_emptied() {
        let e = check("[gateway.management]\nports = []\n").unwrap_err();
        assert_eq!(e.key, "management.ports");
    }

    #[test]
    fn macs_in_either_spelling() {
        assert_eq!(
            parse_mac("02-00-AA-00-00-20").as_deref(),
            Some("02:00:aa:00:00:20")
        );
        assert_eq!(parse_mac("02:00:aa:00:00"), None);
        assert_eq!(parse_mac("02:00:aa:00:00:2g"), None);
    }

    #[test]
    fn the_gateway_and_single_management_hosts_are_never_quarantined() {
        let g =
            check("[gateway.management]\nfrom = [\"198.18.1.0/24\", \"198.18.1.2/32\"]\n").unwrap();
        assert!(within(&g.exempt, "198.18.1.1".parse().unwrap()));
        assert!(within(&g.exempt, "198.18.1.2".parse().unwrap()));
        assert!(!within(&g.exempt, "198.18.1.3".parse().unwrap()));
        let e = check("[gateway.quarantine]\nthreshold = 100000\n").unwrap_err();
        assert_eq!(e.key, "quarantine.threshold");
        let e = check("hosts = { \"bad name!\" = [\"198.19.1.1\"] }\n").unwrap_err();
        assert!(e.key.starts_with("hosts"), "{e}");
        let g = check("hosts = { \"Cloud.Example.\" = [\"198.19.1.1\"] }\n").unwrap();
        assert!(g.hosts.contains_key("cloud.example"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(GatewayConfig::from_toml("[gateway]\nlan_iface = \"x\"\n").is_err());
    }
}
