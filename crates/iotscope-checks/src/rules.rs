//! Device identification: rules that match what the survey recorded
//! (banners, HTTP headers and titles, SSH versions, TLS certificates,
//! Modbus identification) to a vendor, model, device type and criticality.
//!
//! The format (TOML, documented in docs/identification-rules.md):
//!
//! ```toml
//! [[rule]]
//! name = "Hikvision IP camera"
//! http_server = "Hikvision-Webs"     # every condition given must match,
//! vendor = "Hikvision"               # each on some service of the host;
//! model_from = "http_realm"          # case-insensitive substrings
//! device_type = "camera"
//! criticality = "consumer"           # critical | network | consumer
//! ```
//!
//! User rules come first, then the shipped ones; the first rule that
//! matches names the device.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The shipped rules.
pub const DEFAULT_RULES: &str = include_str!("../data/rules.toml");

/// How much harm an open device can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    /// Nothing matched.
    Unknown,
    /// Cameras, recorders, media.
    Consumer,
    /// Routers, gateways, brokers.
    Network,
    /// Water, power, medical, industrial control.
    Critical,
}

/// One rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// What the rule recognises.
    pub name: String,
    /// Module name that must have answered (telnet, http, ssh, ...).
    pub service: Option<String>,
    /// Port that must be open.
    pub port: Option<u16>,
    /// HTTP Server header.
    pub http_server: Option<String>,
    /// HTML title.
    pub http_title: Option<String>,
    /// WWW-Authenticate realm.
    pub http_realm: Option<String>,
    /// Telnet banner or prompt.
    pub telnet: Option<String>,
    /// Telnet banner bytes, in hex, for firmware in legacy encodings
    /// (GBK `c3dcc2eb` is 密码): matched against the raw bytes the survey
    /// kept (`banner_hex`), or the banner's UTF-8 bytes.
    pub telnet_bytes: Option<String>,
    /// SSH identification line.
    pub ssh_version: Option<String>,
    /// TLS certificate subject or issuer.
    pub tls_name: Option<String>,
    /// Modbus vendor name (device identification).
    pub modbus_vendor: Option<String>,
    /// Modbus product code.
    pub modbus_product: Option<String>,
    /// FTP greeting.
    pub ftp: Option<String>,
    /// RTSP Server header.
    pub rtsp_server: Option<String>,
    /// Vendor it names.
    pub vendor: String,
    /// Model it names (literal).
    pub model: Option<String>,
    /// Or: take the model from a field (http_title, http_realm, modbus_product, ssh_version).
    pub model_from: Option<String>,
    /// camera, dvr, router, water_logger, power_monitor, plc, mqtt_broker, ...
    pub device_type: String,
    /// Its criticality.
    pub criticality: Criticality,
}

/// What a device probably is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Vendor.
    pub vendor: String,
    /// Model, when known.
    pub model: Option<String>,
    /// Device type.
    pub device_type: String,
    /// Criticality.
    pub criticality: Criticality,
    /// The rule that matched.
    pub rule: String,
}

/// A rules file that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct RulesError {
    /// File name.
    pub source_name: String,
    /// What and where (TOML's line and column).
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

/// An ordered rule list.
#[derive(Clone, Debug)]
pub struct Rules(pub Vec<Rule>);

/// One answering service, as the survey recorded it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// Port.
    pub port: u16,
    /// Module that ran.
    pub service: String,
    /// Its banner.
    pub banner: Value,
}

fn field(s: &Seen, name: &str) -> Option<String> {
    let b = &s.banner;
    let text = |v: &Value| v.as_str().map(String::from);
    match (s.service.as_str(), name) {
        ("http", "http_server") => text(&b["server"]),
        ("http", "http_title") => text(&b["title"]),
        ("http", "http_realm") => text(&b["www_authenticate"]["realm"]),
        ("telnet", "telnet") => Some(format!(
            "{}\n{}",
            b["banner"].as_str().unwrap_or(""),
            b["prompt"].as_str().unwrap_or("")
        )),
        ("telnet", "telnet_bytes") => Some(match b["banner_hex"].as_str() {
            Some(hex) => hex.to_string(),
            None => b["banner"]
                .as_str()
                .unwrap_or("")
                .bytes()
                .map(|x| format!("{x:02x}"))
                .collect(),
        }),
        ("ssh", "ssh_version") => text(&b["version"]),
        ("tls", "tls_name") => Some(format!(
            "{}\n{}",
            b["certificate"]["subject"].as_str().unwrap_or(""),
            b["certificate"]["issuer"].as_str().unwrap_or("")
        )),
        ("modbus", "modbus_vendor") => text(&b["device_identification"]["vendor"]),
        ("modbus", "modbus_product") => text(&b["device_identification"]["product_code"]),
        ("ftp", "ftp") => text(&b["greeting"]),
        ("rtsp", "rtsp_server") => text(&b["server"]),
        _ => None,
    }
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

impl Rule {
    fn conditions(&self) -> Vec<(&'static str, &str)> {
        [
            ("http_server", &self.http_server),
            ("http_title", &self.http_title),
            ("http_realm", &self.http_realm),
            ("telnet", &self.telnet),
            ("telnet_bytes", &self.telnet_bytes),
            ("ssh_version", &self.ssh_version),
            ("tls_name", &self.tls_name),
            ("modbus_vendor", &self.modbus_vendor),
            ("modbus_product", &self.modbus_product),
            ("ftp", &self.ftp),
            ("rtsp_server", &self.rtsp_server),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// Whether the host's services satisfy every condition.
    pub fn matches(&self, host: &[Seen]) -> bool {
        let conds = self.conditions();
        if conds.is_empty() && self.service.is_none() && self.port.is_none() {
            return false; // a rule that says nothing matches nothing
        }
        if let Some(svc) = &self.service {
            if !host.iter().any(|s| &s.service == svc) {
                return false;
            }
        }
        if let Some(port) = self.port {
            if !host.iter().any(|s| s.port == port) {
                return false;
            }
        }
        conds.iter().all(|(k, v)| {
            host.iter()
                .any(|s| field(s, k).is_some_and(|f| contains(&f, v)))
        })
    }
}

impl Rules {
    /// Parses a rules file.
    pub fn parse(text: &str, source_name: &str) -> Result<Rules, RulesError> {
        let f: RulesFile = toml::from_str(text).map_err(|e| RulesError {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        Ok(Rules(f.rule))
    }

    /// The shipped rules.
    pub fn shipped() -> Rules {
        Rules::parse(DEFAULT_RULES, "the shipped rules").expect("shipped rules parse")
    }

    /// `user` rules first, then these.
    pub fn with_user_rules(self, user: Rules) -> Rules {
        Rules(user.0.into_iter().chain(self.0).collect())
    }

    /// The first matching rule's identity.
    pub fn identify(&self, host: &[Seen]) -> Option<Identity> {
        let rule = self.0.iter().find(|r| r.matches(host))?;
        let model = rule.model.clone().or_else(|| {
            let f = rule.model_from.as_deref()?;
            host.iter()
                .find_map(|s| field(s, f))
                .filter(|m| !m.is_empty())
        });
        Some(Identity {
            vendor: rule.vendor.clone(),
            model,
            device_type: rule.device_type.clone(),
            criticality: rule.criticality,
            rule: rule.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http(server: &str, title: &str, realm: Option<&str>) -> Seen {
        Seen {
            port: 80,
            service: "http".into(),
            banner: json!({"server": server, "title": title,
                           "www_authenticate": realm.map(|r| json!({"scheme": "Basic", "realm": r}))}),
        }
    }

    #[test]
    fn shipped_rules_parse_and_name_devices() {
        let r = Rules::shipped();
        assert!(r.0.len() >= 30, "{} rules", r.0.len());
        let id = r
            .identify(&[http(
                "Hikvision-Webs",
                "Hikvision Digital Technology",
                Some("DS-2CD2032-I"),
            )])
            .unwrap();
        assert_eq!(
            (id.vendor.as_str(), id.device_type.as_str()),
            ("Hikvision", "camera")
        );
        assert_eq!(id.model.as_deref(), Some("DS-2CD2032-I"));
        assert_eq!(id.criticality, Criticality::Consumer);
        let water = r
            .identify(&[http(
                "Embedthis-http",
                "WL-200 Water Equipment Data Logger",
                None,
            )])
            .unwrap();
        assert_eq!(water.criticality, Criticality::Critical);
        assert_eq!(r.identify(&[http("nginx", "Welcome", None)]), None);
    }

    #[test]
    fn user_rules_come_first_and_bad_files_say_where() {
        let user = Rules::parse(
            "[[rule]]\nname = \"mine\"\nhttp_server = \"Hikvision\"\nvendor = \"Mine\"\ndevice_type = \"nvr\"\ncriticality = \"critical\"\n",
            "mine.toml",
        )
        .unwrap();
        let r = Rules::shipped().with_user_rules(user);
        let id = r.identify(&[http("Hikvision-Webs", "", None)]).unwrap();
        assert_eq!(id.vendor, "Mine");
        let e = Rules::parse("[[rule]]\nname = 3\n", "bad.toml").unwrap_err();
        assert!(e.to_string().starts_with("bad.toml: "), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn legacy_encoded_banners_match_by_their_bytes() {
        let r = Rules::parse(
            "[[rule]]\nname = \"gbk dvr\"\ntelnet_bytes = \"C3DCC2EB\"\nvendor = \"Xiongmai\"\ndevice_type = \"dvr\"\ncriticality = \"consumer\"\n",
            "mine.toml",
        )
        .unwrap();
        let seen = |banner: serde_json::Value| Seen {
            port: 23,
            service: "telnet".into(),
            banner,
        };
        // 密码： in GBK: the lossy text has lost it, the bytes have not.
        let gbk = seen(
            serde_json::json!({"banner": "\u{fffd}\u{fffd}", "prompt": "", "banner_hex": "c3dcc2eba3ba"}),
        );
        assert_eq!(r.identify(&[gbk]).unwrap().vendor, "Xiongmai");
        let other = seen(serde_json::json!({"banner": "login: ", "prompt": "login:"}));
        assert!(r.identify(&[other]).is_none());
    }
}
