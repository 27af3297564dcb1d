//! Manufacturer Usage Description files (RFC 8520): the JSON form of the
//! `ietf-mud` YANG model with its `ietf-access-control-list` (RFC 8519)
//! access lists, read into the few matches a gateway can enforce.
//!
//! What is read: `ietf-mud:mud` (`mud-url`, `from-device-policy`,
//! `to-device-policy`) and each named ACL's ACEs with `ipv4`/`ipv6`
//! (`protocol`, source and destination networks,
//! `ietf-acldns:src-dnsname`/`dst-dnsname` from RFC 8520 section 7), `tcp`
//! and `udp` (source and destination ports with `eq`, `neq`, `lte`, `gte` or
//! a range; `ietf-mud:direction-initiated`), and `ietf-mud:mud` matches
//! (`local-networks`, `same-manufacturer`, `manufacturer`, `model`,
//! `controller`, `my-controller`, section 8). An ACE with a match this
//! reader does not know is left out with a warning: an allowlist that
//! leaves out an entry is stricter, never looser.

use serde_json::Value;

use iotscope_telescope::Prefix;

/// Largest MUD file read (real ones are a few KiB).
pub const MAX_MUD_BYTES: usize = 1 << 20;

/// Most ACEs kept from one file.
pub const MAX_ACES: usize = 1000;

/// A MUD file that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("MUD file {file}: {message}")]
pub struct MudError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// IPv4 or IPv6 (the ACL's type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `ipv4-acl-type`.
    V4,
    /// `ipv6-acl-type`.
    V6,
}

/// A port match (RFC 8519 `port-range-or-operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortMatch {
    /// `eq`.
    Eq(u16),
    /// `neq`.
    Neq(u16),
    /// `lte`.
    Lte(u16),
    /// `gte`.
    Gte(u16),
    /// `lower-port`..=`upper-port`.
    Range(u16, u16),
}

/// Who opens the connection (`ietf-mud:direction-initiated`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The device opens it.
    FromDevice,
    /// The other side opens it.
    ToDevice,
}

/// An `ietf-mud:mud` match (RFC 8520 section 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MudMatch {
    /// Any address on the local networks.
    LocalNetworks,
    /// Devices whose MUD URL has the same authority.
    SameManufacturer,
    /// Devices whose MUD URL's authority is this one.
    Manufacturer(String),
    /// Devices with this MUD URL.
    Model(String),
    /// Devices of this controller class (a URI the operator maps).
    Controller(String),
    /// The device's own controllers.
    MyController,
}

/// One access-control entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    /// Its name (for counters and logs).
    pub name: String,
    /// The ACL's family.
    pub family: Family,
    /// IP protocol number.
    pub protocol: Option<u8>,
    /// Source network.
    pub src_net: Option<Prefix>,
    /// Destination network.
    pub dst_net: Option<Prefix>,
    /// Source host name.
    pub src_dnsname: Option<String>,
    /// Destination host name.
    pub dst_dnsname: Option<String>,
    /// Transport (6 or 17) the ports belong to.
    pub l4: Option<u8>,
    /// Source port.
    pub src_port: Option<PortMatch>,
    /// Destination port.
    pub dst_port: Option<PortMatch>,
    /// Who may open the connection.
    pub direction: Option<Direction>,
    /// The MUD match.
    pub mud: Option<MudMatch>,
    /// `accept` (true), or `drop`/`reject`.
    pub accept: bool,
    /// A deny this reader cannot match exactly (an unknown match, an
    /// unreadable ACE or ACL whose action is not accept): the gateway ends
    /// the device's chain here with a drop of everything, a superset of the
    /// deny, so leaving it out can never let more through.
    pub cut: bool,
}

/// A MUD file as the gateway uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mud {
    /// `mud-url`.
    pub url: String,
    /// The URL's authority (host), what `manufacturer` matches.
    pub authority: String,
    /// ACEs of the from-device policy, in order.
    pub from_device: Vec<Ace>,
    /// ACEs of the to-device policy, in order.
    pub to_device: Vec<Ace>,
    /// ACEs left out, and why.
    pub warnings: Vec<String>,
}

/// A host name by RFC 1123 (letters, digits, inner hyphens; labels of 1-63
/// octets; at most 253 characters), lower-cased, without a final dot.
pub fn host_name(text: &str) -> Option<String> {
    let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if t.is_empty() || t.len() > 253 {
        return None;
    }
    let ok = t.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    ok.then_some(t)
}

/// The authority (host) of an `https://` MUD URL.
fn authority(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next()?;
    host_name(host)
}

fn port(v: &Value) -> Result<PortMatch, String> {
    let num = |k: &str| -> Result<u16, String> {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| format!("{k} is not a port"))
    };
    if v.get("lower-port").is_some() {
        let (lo, hi) = (num("lower-port")?, num("upper-port")?);
        if lo > hi {
            return Err(format!("lower-port {lo} above upper-port {hi}"));
        }
        return Ok(PortMatch::Range(lo, hi));
    }
    let p = num("port")?;
    match v.get("operator").and_then(Value::as_str).unwrap_or("eq") {
        "eq" => Ok(PortMatch::Eq(p)),
        "neq" => Ok(PortMatch::Neq(p)),
        "lte" => Ok(PortMatch::Lte(p)),
        "gte" => Ok(PortMatch::Gte(p)),
        o => Err(format!("port operator {o:?}")),
    }
}

/// Reads one ACE; `Err` says why it is left out.
fn ace(family: Family, v: &Value) -> Result<Ace, String> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_string();
    let accept = match v
        .pointer("/actions/forwarding")
        .and_then(Value::as_str)
        .map(|s| s.rsplit(':').next().unwrap_or(s))
    {
        Some("accept") => true,
        Some("drop") | Some("reject") => false,
        other => return Err(format!("ACE {name:?}: forwarding action {other:?}")),
    };
    let action = v
        .pointer("/actions/forwarding")
        .and_then(Value::as_str)
        .unwrap_or("");
    if action.contains(':') && !action.starts_with("ietf-access-control-list:") {
        return Err(format!("ACE {name:?}: forwarding action {action:?}"));
    }
    let mut a = Ace::matching_all(name.clone(), family, accept);
    let empty = serde_json::Map::new();
    let matches = match v.get("matches") {
        Some(Value::Object(m)) => m,
        None => &empty,
        Some(_) => return Err(format!("ACE {name:?}: matches is not an object")),
    };
    for (key, m) in matches {
        let key = key.as_str();
        match key {
            "ipv4" | "ipv6" => {
                let fam = if key == "ipv4" {
                    Family::V4
                } else {
                    Family::V6
                };
                if fam != family {
                    return Err(format!(
                        "ACE {name:?}: {key} matches in another family's ACL"
                    ));
                }
                let obj = m
                    .as_object()
                    .ok_or_else(|| format!("ACE {name:?}: {key} is not an object"))?;
                for (k, val) in obj {
                    let text = || val.as_str().map(str::to_string);
                    match k.as_str() {
                        "protocol" => {
                            a.protocol = Some(
                                val.as_u64()
                                    .and_then(|n| u8::try_from(n).ok())
                                    .ok_or_else(|| format!("ACE {name:?}: protocol {val}"))?,
                            )
                        }
                        "destination-ipv4-network"
                        | "destination-ipv6-network"
                        | "source-ipv4-network"
                        | "source-ipv6-network" => {
                            let p: Prefix = text()
                                .and_then(|t| t.parse().ok())
                                .ok_or_else(|| format!("ACE {name:?}: {k} {val}"))?;
                            if matches!((fam, p), (Family::V4, Prefix::V6 { .. }))
                                || matches!((fam, p), (Family::V6, Prefix::V4 { .. }))
                            {
                                return Err(format!("ACE {name:?}: {k} of the other family"));
                            }
                            if k.starts_with("destination") {
                                a.dst_net = Some(p);
                            } else {
                                a.src_net = Some(p);
                            }
                        }
                        "ietf-acldns:dst-dnsname" | "ietf-acldns:src-dnsname" => {
                            let n = text().and_then(|t| host_name(&t)).ok_or_else(|| {
                                format!("ACE {name:?}: {k} {val} is not a host name")
                            })?;
                            if k.ends_with("dst-dnsname") {
                                a.dst_dnsname = Some(n);
                            } else {
                                a.src_dnsname = Some(n);
                            }
                        }
                        other => {
                            return Err(format!(
                                "ACE {name:?}: {key} match {other:?} is not enforced"
                            ))
                        }
                    }
                }
            }
            "tcp" | "udp" => {
                let proto = if key == "tcp" { 6 } else { 17 };
                if a.l4.is_some() {
                    // RFC 8519: one transport per ACE.
                    return Err(format!("ACE {name:?}: tcp and udp matches in one ACE"));
                }
                a.l4 = Some(proto);
                let obj = m
                    .as_object()
                    .ok_or_else(|| format!("ACE {name:?}: {key} is not an object"))?;
                for (k, val) in obj {
                    match k.as_str() {
                        "source-port" => {
                            a.src_port = Some(port(val).map_err(|e| format!("ACE {name:?}: {e}"))?)
                        }
                        "destination-port" => {
                            a.dst_port = Some(port(val).map_err(|e| format!("ACE {name:?}: {e}"))?)
                        }
                        "ietf-mud:direction-initiated" => {
                            a.direction = Some(match val.as_str() {
                                Some("from-device") => Direction::FromDevice,
                                Some("to-device") => Direction::ToDevice,
                                _ => {
                                    return Err(format!("ACE {name:?}: direction-initiated {val}"))
                                }
                            })
                        }
                        other => {
                            return Err(format!(
                                "ACE {name:?}: {key} match {other:?} is not enforced"
                            ))
                        }
                    }
                }
            }
            "ietf-mud:mud" => {
                let obj = m
                    .as_object()
                    .ok_or_else(|| format!("ACE {name:?}: ietf-mud:mud is not an object"))?;
                if obj.len() != 1 {
                    return Err(format!("ACE {name:?}: one ietf-mud:mud match at a time"));
                }
                let (k, val) = obj.iter().next().expect("one entry");
                let text = || {
                    val.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("ACE {name:?}: {k} {val}"))
                };
                a.mud = Some(match k.as_str() {
                    "local-networks" => MudMatch::LocalNetworks,
                    "same-manufacturer" => MudMatch::SameManufacturer,
                    "my-controller" => MudMatch::MyController,
                    "manufacturer" => MudMatch::Manufacturer(
                        host_name(&text()?)
                            .ok_or_else(|| format!("ACE {name:?}: manufacturer {val}"))?,
                    ),
                    "model" => MudMatch::Model(text()?),
                    "controller" => MudMatch::Controller(text()?),
                    other => {
                        return Err(format!(
                            "ACE {name:?}: ietf-mud:mud match {other:?} is not enforced"
                        ))
                    }
                });
            }
            other => return Err(format!("ACE {name:?}: {other:?} matches are not enforced")),
        }
    }
    if let (Some(p), Some(l4)) = (a.protocol, a.l4) {
        if p != l4 {
            return Err(format!(
                "ACE {name:?}: protocol {p} with {} ports",
                if l4 == 6 { "tcp" } else { "udp" }
            ));
        }
    }
    if a.protocol.is_none() {
        a.protocol = a.l4;
    }
    Ok(a)
}

/// True when an ACE's action is accept (an allow that may be left out).
fn is_accept(e: &Value) -> bool {
    matches!(
        e.pointer("/actions/forwarding").and_then(Value::as_str),
        Some("accept") | Some("ietf-access-control-list:accept")
    )
}

/// The ACE that stands for a deny that cannot be matched exactly.
fn cut_ace(name: String, family: Family) -> Ace {
    Ace {
        cut: true,
        ..Ace::matching_all(name, family, false)
    }
}

impl Ace {
    /// An ACE with no matches yet (it matches every packet of its family).
    fn matching_all(name: String, family: Family, accept: bool) -> Ace {
        Ace {
            name,
            family,
            protocol: None,
            src_net: None,
            dst_net: None,
            src_dnsname: None,
            dst_dnsname: None,
            l4: None,
            src_port: None,
            dst_port: None,
            direction: None,
            mud: None,
            accept,
            cut: false,
        }
    }
}

/// Parses a MUD file's JSON; `file` names it in errors.
///
/// Errors: [`MudError`] for a file that is not JSON, has no
/// `ietf-mud:mud` container, an `https` `mud-url`, or names an ACL it does
/// not contain. ACEs that cannot be enforced exactly are left out and
/// listed in [`Mud::warnings`].
pub fn parse(text: &str, file: &str) -> Result<Mud, MudError> {
    let fail = |message: String| MudError {
        file: file.to_string(),
        message,
    };
    if text.len() > MAX_MUD_BYTES {
        return Err(fail(format!("larger than {MAX_MUD_BYTES} bytes")));
    }
    let doc: Value = serde_json::from_str(text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let mud = doc
        .get("ietf-mud:mud")
        .ok_or_else(|| fail("no \"ietf-mud:mud\" container (RFC 8520 section 2.1)".into()))?;
    let url = mud
        .get("mud-url")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no mud-url".into()))?
        .to_string();
    let authority =
        authority(&url).ok_or_else(|| fail(format!("mud-url {url:?} is not an https URL")))?;
    let acls: Vec<&Value> = doc
        .pointer("/ietf-access-control-list:acls/acl")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut warnings = Vec::new();
    let mut total = 0usize;
    let mut policy = |which: &str| -> Result<Vec<Ace>, MudError> {
        let mut out = Vec::new();
        let names = mud
            .pointer(&format!("/{which}/access-lists/access-list"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for n in names {
            let n = n
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| fail(format!("{which}: an access-list without a name")))?;
            let acl = acls
                .iter()
                .find(|a| a.get("name").and_then(Value::as_str) == Some(n))
                .ok_or_else(|| {
                    fail(format!(
                        "{which} names ACL {n:?}, which the file does not contain"
                    ))
                })?;
            let family = match acl
                .get("type")
                .and_then(Value::as_str)
                .map(|t| t.rsplit(':').next().unwrap_or(t))
            {
                Some("ipv4-acl-type") => Family::V4,
                Some("ipv6-acl-type") => Family::V6,
                other => {
                    // Its denies cannot be enforced: a cut stands for them.
                    let denies = acl
                        .pointer("/aces/ace")
                        .and_then(Value::as_array)
                        .is_some_and(|aces| aces.iter().any(|e| !is_accept(e)));
                    if denies {
                        warnings.push(format!(
                            "ACL {n:?}: type {} is not enforced and it denies: everything after it is dropped",
                            other.unwrap_or("(none)")
                        ));
                        out.push(cut_ace(format!("ACL {n}"), Family::V4));
                    } else {
                        warnings.push(format!(
                            "ACL {n:?}: type {} is not enforced",
                            other.unwrap_or("(none)")
                        ));
                    }
                    continue;
                }
            };
            for e in acl
                .pointer("/aces/ace")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                total += 1;
                if total > MAX_ACES {
                    return Err(fail(format!("more than {MAX_ACES} ACEs")));
                }
                match ace(family, e) {
                    Ok(a) => out.push(a),
                    Err(w) if is_accept(e) => warnings.push(w),
                    Err(w) => {
                        warnings.push(format!("{w}: it denies, so everything after it is dropped"));
                        let name = e.get("name").and_then(Value::as_str).unwrap_or("(unnamed)");
                        out.push(cut_ace(name.to_string(), family));
                    }
                }
            }
        }
        Ok(out)
    };
    let from_device = policy("from-device-policy")?;
    let to_device = policy("to-device-policy")?;
    Ok(Mud {
        url,
        authority,
        from_device,
        to_device,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 8520 section 9, shortened to its first ACEs.
    const RFC_EXAMPLE: &str = r#"{
      "ietf-mud:mud": {
        "mud-version": 1,
        "mud-url": "https://lighting.example.com/lightbulb2000",
        "last-update": "2019-01-28T11:20:51+01:00",
        "cache-validity": 48,
        "is-supported": true,
        "systeminfo": "The BMS Example Light Bulb",
        "from-device-policy": {"access-lists": {"access-list": [{"name": "mud-76100-v6fr"}]}},
        "to-device-policy": {"access-lists": {"access-list": [{"name": "mud-76100-v6to"}]}}
      },
      "ietf-access-control-list:acls": {
        "acl": [
          {"name": "mud-76100-v6to", "type": "ipv6-acl-type", "aces": {"ace": [
            {"name": "cl0-todev", "matches": {
               "ipv6": {"ietf-acldns:src-dnsname": "test.example.com", "protocol": 6},
               "tcp": {"ietf-mud:direction-initiated": "from-device",
                       "source-port": {"operator": "eq", "port": 443}}},
             "actions": {"forwarding": "accept"}},
            {"name": "cl1-todev", "matches": {"ietf-mud:mud": {"local-networks": [null]}},
             "actions": {"forwarding": "accept"}}]}},
          {"name": "mud-76100-v6fr", "type": "ipv6-acl-type", "aces": {"ace": [
            {"name": "cl0-frdev", "matches": {
               "ipv6": {"ietf-acldns:dst-dnsname": "test.example.com", "protocol": 6},
               "tcp": {"ietf-mud:direction-initiated": "from-device",
                       "destination-port": {"operator": "eq", "port": 443}}},
             "actions": {"forwarding": "accept"}},
            {"name": "cl1-frdev", "matches": {"ietf-mud:mud": {"local-networks": [null]}},
             "actions": {"forwarding": "accept"}},
            {"name": "eth-frdev", "matches": {"eth": {"ethertype": 34525}},
             "actions": {"forwarding": "accept"}}]}}
        ]
      }
    }"#;

    #[test]
    fn reads_the_rfc_example() {
        let m = parse(RFC_EXAMPLE, "bulb.json").unwrap();
        assert_eq!(m.authority, "lighting.example.com");
        assert_eq!(m.from_device.len(), 2);
        let a = &m.from_device[0];
        assert_eq!(a.family, Family::V6);
        assert_eq!(a.dst_dnsname.as_deref(), Some("test.example.com"));
        assert_eq!(a.protocol, Some(6));
        assert_eq!(a.dst_port, Some(PortMatch::Eq(443)));
        assert_eq!(a.direction, Some(Direction::FromDevice));
        assert_eq!(m.from_device[1].mud, Some(MudMatch::LocalNetworks));
        assert_eq!(m.to_device[0].src_port, Some(PortMatch::Eq(443)));
        // An ethertype match cannot be enforced by address rules: left out, said.
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("eth-frdev"));
    }

    #[test]
    fn a_deny_that_cannot_be_read_cuts_the_policy() {
        let doc = r#"{"ietf-mud:mud": {"mud-url": "https://x.example/a",
            "from-device-policy": {"access-lists": {"access-list": [{"name": "m"}, {"name": "a"}]}}},
          "ietf-access-control-list:acls": {"acl": [
            {"name": "m", "type": "mixed-eth-ipv4-ipv6-acl-type", "aces": {"ace": [
              {"name": "d0", "matches": {}, "actions": {"forwarding": "drop"}}]}},
            {"name": "a", "type": "ipv4-acl-type", "aces": {"ace": [
            {"name": "d1", "matches": {"ipv4": {"dscp": 10, "destination-ipv4-network": "198.18.66.0/24"}}, "actions": {"forwarding": "drop"}},
            {"name": "both", "matches": {"tcp": {"destination-port": {"operator": "eq", "port": 443}}, "udp": {"destination-port": {"operator": "eq", "port": 443}}}, "actions": {"forwarding": "accept"}},
            {"name": "any", "matches": {}, "actions": {"forwarding": "accept"}}
          ]}}]}}"#;
        let m = parse(doc, "x").unwrap();
        let names: Vec<(&str, bool)> = m
            .from_device
            .iter()
            .map(|a| (a.name.as_str(), a.cut))
            .collect();
        assert_eq!(names, vec![("ACL m", true), ("d1", true), ("any", false)]);
        assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
    }

    #[test]
    fn refuses_what_is_not_a_mud_file() {
        assert!(parse("{}", "x")
            .unwrap_err()
            .message
            .contains("ietf-mud:mud"));
        let e = parse(
            r#"{"ietf-mud:mud": {"mud-url": "http://x.example/a"}}"#,
            "x",
        )
        .unwrap_err();
        assert!(e.message.contains("https"), "{e}");
        let e = parse(
            r#"{"ietf-mud:mud": {"mud-url": "https://x.example/a",
                 "from-device-policy": {"access-lists": {"access-list": [{"name": "nope"}]}}}}"#,
            "x",
        )
        .unwrap_err();
        assert!(e.message.contains("nope"), "{e}");
    }

    #[test]
    fn hostile_names_and_ports_leave_the_ace_out() {
        let doc = r#"{"ietf-mud:mud": {"mud-url": "https://x.example/a",
            "from-device-policy": {"access-lists": {"access-list": [{"name": "a"}]}}},
          "ietf-access-control-list:acls": {"acl": [{"name": "a", "type": "ipv4-acl-type", "aces": {"ace": [
            {"name": "n1", "matches": {"ipv4": {"ietf-acldns:dst-dnsname": "evil\"; flush ruleset"}}, "actions": {"forwarding": "accept"}},
            {"name": "n2", "matches": {"tcp": {"destination-port": {"operator": "eq", "port": 70000}}}, "actions": {"forwarding": "accept"}},
            {"name": "n3", "matches": {"ipv4": {"protocol": 17}, "tcp": {}}, "actions": {"forwarding": "accept"}},
            {"name": "n4", "matches": {"ipv4": {"destination-ipv4-network": "198.18.9.0/24"}}, "actions": {"forwarding": "accept"}}
          ]}}]}}"#;
        let m = parse(doc, "x").unwrap();
        assert_eq!(m.from_device.len(), 1);
        assert_eq!(m.from_device[0].name, "n4");
        assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
    }
}
