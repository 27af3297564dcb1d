//! Reports for manufacturers: the survey's findings grouped by vendor and
//! model, one CSAF 2.0 security advisory per vendor (product tree of its
//! models, one vulnerability per weakness with its CWE, the affected
//! products, remediations and the number of devices seen). Addresses are
//! never in an advisory: a manufacturer needs the weakness, not who owns it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Longest vendor or model name an advisory carries.
pub const MAX_NAME: usize = 40;

/// Most words in a vendor or model name.
pub const MAX_WORDS: usize = 4;

/// A vendor or model name fit for an advisory, from identification text
/// that may have come from a device (a `<title>` or realm). Product names
/// are short codes ("DS-2CD2032-I", "NPort 5110"), so anything that reads
/// like free text is refused rather than cleaned: whitespace collapsed;
/// only letters, digits, spaces and `- _ . / + ( ) #`; at most
/// [`MAX_NAME`] characters and [`MAX_WORDS`] words; no address anywhere in
/// it (a title such as `203.0.113.77 (customer: ...)` names a subscriber);
/// and nothing shaped like one or like a phone number or a URL: at most two
/// all-digit tokens, none longer than six digits, no run of eight or more
/// hex digits, no `//`. None when nothing fit remains.
pub fn product_name(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let name = words.join(" ");
    let fit = |c: char| c.is_alphanumeric() || " -_./+()#".contains(c);
    let tokens: Vec<&str> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    let digit_tokens: Vec<&&str> = tokens
        .iter()
        .filter(|t| t.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let shaped_like_data = digit_tokens.len() > 2
        || digit_tokens.iter().any(|t| t.len() > 6)
        || tokens
            .iter()
            .any(|t| t.len() >= 8 && t.chars().all(|c| c.is_ascii_hexdigit()))
        || name.contains("//");
    if name.is_empty()
        || name.chars().count() > MAX_NAME
        || words.len() > MAX_WORDS
        || !name.chars().all(fit)
        || shaped_like_data
        || iotscope_share::find_addresses(&name).next().is_some()
    {
        return None;
    }
    Some(name)
}

/// An advisory that must not leave.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdvisoryError {
    /// The finished document holds an address: nothing is written.
    #[error("the advisory for {vendor:?} would carry the address {address}: nothing written")]
    Address {
        /// The vendor of the document.
        vendor: String,
        /// The address found.
        address: String,
    },
}

/// The last gate before an advisory leaves: the whole document, as it will
/// be written, holds no IPv4 or IPv6 address in any spelling the scanner
/// knows ([`iotscope_share::find_addresses`]).
///
/// # Errors
/// [`AdvisoryError::Address`] naming the first address found.
pub fn check_no_address(vendor: &str, text: &str) -> Result<(), AdvisoryError> {
    match iotscope_share::find_addresses(text).next() {
        None => Ok(()),
        Some((_, ip)) => Err(AdvisoryError::Address {
            vendor: vendor.to_string(),
            address: ip.to_string(),
        }),
    }
}

/// A finding as the advisories read it.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Vendor from identification.
    pub vendor: String,
    /// Model (may be empty).
    pub model: String,
    /// Finding kind.
    pub kind: String,
    /// When it was last seen (RFC 3339).
    pub last_seen: String,
}

/// Who publishes.
#[derive(Clone, Debug)]
pub struct Publisher {
    /// Organisation name.
    pub name: String,
    /// Its namespace URL.
    pub namespace: String,
}

/// CWE, title, description and remediation of a finding kind; `None` for
/// kinds that are not a product weakness.
fn weakness(
    kind: &str,
) -> Option<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
)> {
    Some(match kind {
        "default_credential" => (
            "CWE-1392",
            "Use of Default Credentials",
            "Devices accept a factory-default user name and password for remote login",
            "Devices in the field accept a user name and password pair from the default-credential list that IoT malware such as Mirai tries first.",
            "Ship each device with a unique password or force a change at first use (ETSI EN 303 645 5.1-1); publish a firmware update that does so.",
        ),
        "no_authentication" => (
            "CWE-306",
            "Missing Authentication for Critical Function",
            "A network service gives access without any authentication",
            "Devices in the field give shell, control or protocol access over the network without asking for any credential.",
            "Require authentication on every network service; disable services that are not needed by default.",
        ),
        "open_control_panel" => (
            "CWE-306",
            "Missing Authentication for Critical Function",
            "The web control panel operates the equipment without a login",
            "Devices in the field serve a web page whose forms operate the equipment (start/stop, thresholds, reset, reboot) to anyone who reaches it.",
            "Put the control panel behind authentication and publish a firmware update; document how to keep the panel off the Internet.",
        ),
        "exposed_telnet" => (
            "CWE-319",
            "Cleartext Transmission of Sensitive Information",
            "Telnet login enabled and reachable",
            "Devices in the field expose a telnet login, which carries credentials in clear text and is the main way IoT malware spreads.",
            "Disable telnet by default or replace it with SSH; publish a firmware update that does so.",
        ),
        "cleartext_admin" => (
            "CWE-319",
            "Cleartext Transmission of Sensitive Information",
            "Administration over an unencrypted protocol",
            "Devices in the field offer their administration login over plain HTTP or telnet.",
            "Offer administration over HTTPS or SSH only.",
        ),
        "anonymous_mqtt" => (
            "CWE-306",
            "Missing Authentication for Critical Function",
            "MQTT broker accepts anonymous clients",
            "Brokers in the field accept anonymous MQTT clients, who can read and publish device messages.",
            "Disable anonymous access by default and require credentials and TLS.",
        ),
        "exposed_modbus" => (
            "CWE-306",
            "Missing Authentication for Critical Function",
            "Modbus/TCP reachable without authentication",
            "Controllers in the field answer Modbus/TCP, which has no authentication, from the network.",
            "Document network segregation; offer an authenticated alternative (Modbus/TCP Security) and a way to restrict clients.",
        ),
        "lockout_absent" => (
            "CWE-307",
            "Improper Restriction of Excessive Authentication Attempts",
            "No limit on failed login attempts",
            "Devices in the field accept unlimited failed telnet logins without lockout or delay.",
            "Limit or slow down failed login attempts (ETSI EN 303 645 5.1-5).",
        ),
        _ => return None,
    })
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// One CSAF 2.0 document per vendor, keyed by vendor.
pub fn advisories(
    observed: &[Observed],
    publisher: &Publisher,
    now: &str,
) -> BTreeMap<String, Value> {
    // Names pass the normaliser: a model that is not a fit product name
    // (free text, an address) becomes "unidentified model".
    let clean: Vec<Observed> = observed
        .iter()
        .filter_map(|o| {
            Some(Observed {
                vendor: product_name(&o.vendor)?,
                model: product_name(&o.model).unwrap_or_default(),
                kind: o.kind.clone(),
                last_seen: o.last_seen.clone(),
            })
        })
        .collect();
    let mut by_vendor: BTreeMap<&str, Vec<&Observed>> = BTreeMap::new();
    // A device only recognised generically ("unknown (BusyBox telnet)") has
    // no manufacturer to tell.
    for o in clean.iter().filter(|o| {
        weakness(&o.kind).is_some() && !o.vendor.is_empty() && !o.vendor.starts_with("unknown")
    }) {
        by_vendor.entry(o.vendor.as_str()).or_default().push(o);
    }
    let mut out = BTreeMap::new();
    for (vendor, obs) in by_vendor {
        // Products: the vendor's models (an unknown model is "devices").
        let mut models: BTreeMap<String, String> = BTreeMap::new();
        for o in &obs {
            let model = if o.model.is_empty() {
                "unidentified model".to_string()
            } else {
                o.model.clone()
            };
            let next = format!("CSAFPID-{:04}", models.len() + 1);
            models.entry(model).or_insert(next);
        }
        let product_of = |o: &Observed| {
            let model = if o.model.is_empty() {
                "unidentified model"
            } else {
                o.model.as_str()
            };
            models[model].clone()
        };
        let branches: Vec<Value> = models
            .iter()
            .map(|(model, id)| {
                json!({"category": "product_name", "name": model,
                       "product": {"name": format!("{vendor} {model}"), "product_id": id}})
            })
            .collect();
        // One vulnerability per weakness kind.
        let mut kinds: BTreeMap<&str, (BTreeMap<String, usize>, String)> = BTreeMap::new();
        for o in &obs {
            let e = kinds.entry(o.kind.as_str()).or_default();
            *e.0.entry(product_of(o)).or_default() += 1;
            if o.last_seen > e.1 {
                e.1 = o.last_seen.clone();
            }
        }
        let vulnerabilities: Vec<Value> = kinds
            .iter()
            .map(|(kind, (products, _))| {
                let (cwe, cwe_name, title, description, fix) = weakness(kind).expect("filtered");
                let ids: Vec<&String> = products.keys().collect();
                let counts: Vec<String> = products
                    .iter()
                    .map(|(p, n)| {
                        let model = models.iter().find(|(_, id)| *id == p).map(|(m, _)| m.as_str()).unwrap_or("");
                        format!("{model}: {n}")
                    })
                    .collect();
                json!({
                    "title": title,
                    "cwe": {"id": cwe, "name": cwe_name},
                    "ids": [{"system_name": "iotscope finding kind", "text": kind}],
                    "notes": [
                        {"category": "description", "title": "What was observed", "text": description},
                        {"category": "details", "title": "Devices observed by model",
                         "text": format!("Devices with this weakness seen by the survey: {}.", counts.join("; "))}
                    ],
                    "product_status": {"known_affected": ids},
                    "remediations": [{"category": "mitigation", "details": fix, "product_ids": ids}],
                })
            })
            .collect();
        let id = format!("IOTSCOPE-{}-{}", &now[..4.min(now.len())], slug(vendor));
        let doc = json!({
            "document": {
                "category": "csaf_security_advisory",
                "csaf_version": "2.0",
                "lang": "en",
                "title": format!("Weaknesses of {vendor} devices observed in the field"),
                "publisher": {"category": "coordinator", "name": publisher.name, "namespace": publisher.namespace},
                "notes": [{"category": "summary", "title": "Summary",
                           "text": format!("A survey of authorised address ranges found {} observations of {} weakness kinds on {} {} models. No address is included.", obs.len(), kinds.len(), models.len(), vendor)}],
                "references": [{"category": "external", "summary": "Publisher",
                                "url": publisher.namespace}],
                "tracking": {
                    "id": id,
                    "status": "final",
                    "version": "1",
                    "revision_history": [{"date": now, "number": "1", "summary": "Initial version."}],
                    "initial_release_date": now,
                    "current_release_date": now,
                    "generator": {"date": now, "engine": {"name": "iotscope", "version": env!("CARGO_PKG_VERSION")}},
                },
            },
            "product_tree": {"branches": [{"category": "vendor", "name": vendor, "branches": branches}]},
            "vulnerabilities": vulnerabilities,
        });
        out.insert(vendor.to_string(), doc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_document_per_vendor_with_every_product_referenced() {
        let o = |v: &str, m: &str, k: &str| Observed {
            vendor: v.into(),
            model: m.into(),
            kind: k.into(),
            last_seen: "2026-11-26T00:00:00Z".into(),
        };
        let docs = advisories(
            &[
                o("Huawei", "HG532e", "default_credential"),
                o("Huawei", "HG532e", "exposed_telnet"),
                o("Huawei", "", "default_credential"),
                o("Hikvision", "DS-2CD2032-I", "login_lockout"), // not a weakness
            ],
            &Publisher {
                name: "Example CERT".into(),
                namespace: "https://cert.example".into(),
            },
            "2026-11-26T00:00:00Z",
        );
        assert_eq!(docs.len(), 1);
        let d = &docs["Huawei"];
        assert_eq!(d["vulnerabilities"].as_array().unwrap().len(), 2);
        assert_eq!(
            d["product_tree"]["branches"][0]["branches"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(d["vulnerabilities"][0]["cwe"]["id"], "CWE-1392");
        assert!(!d.to_string().contains("127."), "no addresses");
    }

    /// Issue 14: a device title such as `203.0.113.77 (customer: ...)`
    /// became the product name in a manufacturer's advisory.
    #[test]
    fn device_text_never_names_a_product_with_an_address_or_free_text() {
        for bad in [
            "203.0.113.77 (customer: Tanaka)",
            "cam-2001:db8::7",
            "NPort\x1b]0;x\x07",
            "=HYPERLINK(\"http://evil\")",
            "<script>alert(1)</script>",
            &"A".repeat(41),
            "   ",
            // Free text that passes a character filter (issue 14 review).
            "NPort Yamada Taro 090 1234 5678 Setagaya 1-2-3",
            "NPort 203-0-113-79",
            "NPort 203 0 113 81",
            "NPort 3405803855",
            "NPort c0a80101",
            "NPort https//evil.example/x",
        ] {
            assert_eq!(product_name(bad), None, "{bad:?}");
        }
        assert_eq!(
            product_name("  DS-2CD2032-I  "),
            Some("DS-2CD2032-I".into())
        );
        assert_eq!(
            product_name("NPort 5110 (rev. 2)"),
            Some("NPort 5110 (rev. 2)".into())
        );
        assert_eq!(product_name("ルーター X1"), Some("ルーター X1".into()));
        assert_eq!(
            product_name("NBD80X16S-KL V4.02.R11"),
            Some("NBD80X16S-KL V4.02.R11".into())
        );
        assert_eq!(
            product_name("WL-200 Data Logger"),
            Some("WL-200 Data Logger".into())
        );
        let docs = advisories(
            &[Observed {
                vendor: "Moxa".into(),
                model: "203.0.113.77 (customer: Tanaka)".into(),
                kind: "default_credential".into(),
                last_seen: "2026-11-26T00:00:00Z".into(),
            }],
            &Publisher {
                name: "Example CERT".into(),
                namespace: "https://cert.example".into(),
            },
            "2026-11-26T00:00:00Z",
        );
        let text = docs["Moxa"].to_string();
        assert!(
            text.contains("unidentified model") && !text.contains("203.0.113"),
            "{text}"
        );
        assert_eq!(check_no_address("Moxa", &text), Ok(()));
        assert!(matches!(
            check_no_address("Moxa", "{\"x\": \"seen at 198.51.100.2\"}"),
            Err(AdvisoryError::Address { .. })
        ));
    }
}
