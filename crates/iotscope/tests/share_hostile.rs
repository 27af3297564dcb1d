//! Anonymised sharing with hostile device text (issue 14, item 4): banners,
//! titles and keys that carry addresses glued to letters, colons and
//! brackets lose every one of them in `share export`, and each is replaced
//! by the image `share anonymize` gives it.

use std::io::Write;
use std::process::{Command, Stdio};

use iotscope_store::{FindingRecord, ServiceObservation, SqliteStore, Store};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

const KEY: &str = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

/// What the reproducer's device says, and more of the same.
const TITLE: &str = "Camera IP:203.0.113.7 gw fe:203.0.113.9";
const TELNET: &str = "WAN address:198.51.100.23\r\nLAN IP=192.168.1.1\r\nabc203.0.113.10\r\n";
const LOCATION: &str = "http://[2001:db8:77::1]:8080/login?next=http://198.51.100.99:81/";

/// Every address above, in the spelling the device used.
const SECRETS: &[&str] = &[
    "203.0.113.7",
    "203.0.113.9",
    "198.51.100.23",
    "192.168.1.1",
    "203.0.113.10",
    "2001:db8:77::1",
    "198.51.100.99",
    "198.51.100.40",
    "::ffff:198.51.100.41",
    "198.51.100.41",
    "192.0.2.50",
];

fn anonymize(key: &std::path::Path, input: &str) -> Vec<String> {
    let mut child = bin()
        .args(["share", "anonymize", "--key-file"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_share_of_hostile_banners_keeps_no_address_in_any_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let mut store = SqliteStore::open(&db).unwrap();
    let ts = "2026-11-30T12:00:00Z".to_string();
    let http = serde_json::json!({
        "title": TITLE,
        "server": "Boa/0.94",
        "headers": {"Location": LOCATION, "X-Peer:198.51.100.40": "yes"},
    });
    let telnet = serde_json::json!({"banner": TELNET, "mapped": "peer=[::ffff:198.51.100.41]"});
    store
        .save_services(&[
            ServiceObservation {
                ip: "192.0.2.50".into(),
                port: 80,
                proto: "tcp".into(),
                ts: ts.clone(),
                status: "open".into(),
                service: Some("http".into()),
                banner: Some(http.to_string()),
            },
            ServiceObservation {
                ip: "192.0.2.50".into(),
                port: 23,
                proto: "tcp".into(),
                ts: ts.clone(),
                status: "open".into(),
                service: Some("telnet".into()),
                banner: Some(telnet.to_string()),
            },
        ])
        .unwrap();
    store
        .save_findings(&[FindingRecord {
            ip: "192.0.2.50".into(),
            port: 80,
            service: "http".into(),
            kind: "open_admin_panel".into(),
            severity: "high".into(),
            device: Some(serde_json::json!({"vendor": "Acme", "model": TITLE}).to_string()),
            evidence: serde_json::json!({"protocol": "http", "ts": ts}).to_string(),
            ts: ts.clone(),
            first_seen: ts.clone(),
        }])
        .unwrap();
    drop(store);

    let key = dir.path().join("k");
    std::fs::write(&key, KEY).unwrap();
    let out = dir.path().join("share.json");
    let st = bin()
        .args(["share", "export", "--key-file"])
        .arg(&key)
        .arg("--db")
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&out).unwrap();
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret} left in the share:\n{text}"
        );
    }
    // Each replaced by the image `share anonymize` gives it (the mapped
    // one as an IPv6 address, so not its IPv4 spelling).
    let plain: Vec<&str> = SECRETS
        .iter()
        .copied()
        .filter(|s| !s.contains("198.51.100.41"))
        .collect();
    let images = anonymize(&key, &format!("{}\n", plain.join("\n")));
    for (orig, image) in plain.iter().zip(&images) {
        assert!(
            text.contains(image.as_str()),
            "image {image} of {orig} not in:\n{text}"
        );
    }
    // The text around them is kept.
    for kept in [
        "Camera IP:",
        " gw fe:",
        "WAN address:",
        "abc",
        "]:8080/login?next=http://",
    ] {
        assert!(text.contains(kept), "{kept:?} lost:\n{text}");
    }
}
