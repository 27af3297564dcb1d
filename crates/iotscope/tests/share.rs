//! Anonymised sharing end to end: the reference Crypto-PAn vectors through
//! the command line, and an export of a real store (telescope run over a
//! generated capture, a survey of a lab) in which no original address is
//! left and every address is replaced by the same image `anonymize` gives.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

/// The sample key of the Crypto-PAn reference distribution, as hex.
const REFERENCE_KEY: &str = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

fn anonymize(key: &std::path::Path, input: &str) -> (Option<i32>, String, String) {
    let mut child = bin()
        .args(["share", "anonymize", "--key-file"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.insert(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

#[test]
fn the_command_line_gives_the_reference_images_and_refuses_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ref.key");
    std::fs::write(&key, format!("{REFERENCE_KEY}\n")).unwrap();
    let (code, out, _) = anonymize(&key, "128.11.68.132\n10.185.25.118\n2001:db8::1\n");
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "135.242.180.132\n117.161.29.118\n4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e\n"
    );
    // A bad line: exit 2, its number, and the lines before it written.
    let (code, out, err) = anonymize(&key, "128.11.68.132\nnot-an-address\n");
    assert_eq!(code, Some(2));
    assert_eq!(out, "135.242.180.132\n");
    assert!(err.contains("line 2"), "{err}");
    // keygen: 64 hex characters, private, never overwrites.
    let k2 = dir.path().join("new.key");
    assert!(bin()
        .args(["share", "keygen", "--out"])
        .arg(&k2)
        .status()
        .unwrap()
        .success());
    let text = std::fs::read_to_string(&k2).unwrap();
    assert_eq!(text.trim().len(), 64);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&k2).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!bin()
        .args(["share", "keygen", "--out"])
        .arg(&k2)
        .status()
        .unwrap()
        .success());
    assert_eq!(std::fs::read_to_string(&k2).unwrap(), text);
    // A key file that is not a key says so.
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "abc").unwrap();
    let (code, _, err) = anonymize(&bad, "192.0.2.4\n");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bad.key") && err.contains("64 hexadecimal"),
        "{err}"
    );
}

#[test]
fn an_export_keeps_no_original_address_and_maps_each_one_consistently() {
    let lab = common::RunningLab::start("127.78.13.0/24", 8, 3);
    let dir = lab.dir.path();
    let db = dir.join("s.db");
    let pcap = dir.join("d.pcap");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success());
    ok(bin()
        .args([
            "lab",
            "darknet",
            "--packets",
            "20000",
            "--seed",
            "4",
            "--out",
        ])
        .arg(&pcap));
    let report = bin()
        .args([
            "telescope",
            "analyze",
            "--format",
            "json",
            "--top",
            "100000",
        ])
        .args([
            "--darknet",
            "198.18.0.0/16",
            "--darknet",
            "2001:db8:1::/48",
            "--db",
        ])
        .arg(&db)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(report.status.success());
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    common::survey_lab_into("127.78.13.0/24", "22,23,80,81,502,1883,8080,8081", dir, &db);
    // Every address the store holds.
    let mut originals = BTreeSet::new();
    let mut all = BTreeSet::new();
    strings(&report, &mut all);
    for line in std::fs::read_to_string(dir.join("rows.jsonl"))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(line).unwrap();
        strings(&v, &mut all);
    }
    for s in all {
        let bare = s.split('/').next().unwrap();
        if bare.parse::<std::net::IpAddr>().is_ok() {
            originals.insert(bare.to_string());
        }
    }
    assert!(originals.len() > 100, "{} addresses", originals.len());

    let key = dir.join("k");
    std::fs::write(&key, REFERENCE_KEY).unwrap();
    let out = dir.join("share.json");
    ok(bin()
        .args([
            "share",
            "export",
            "--top",
            "100000",
            "--anonymize",
            "cryptopan",
            "--key-file",
        ])
        .arg(&key)
        .arg("--db")
        .arg(&db)
        .arg("--out")
        .arg(&out));
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["anonymization"], "cryptopan");
    assert!(doc["telescope"]["infected"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert!(!doc["services"].as_array().unwrap().is_empty());
    let mut exported = BTreeSet::new();
    strings(&doc, &mut exported);
    let exported_addrs: BTreeSet<String> = exported
        .iter()
        .map(|s| s.split('/').next().unwrap().to_string())
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
        .collect();
    // Images as `anonymize` gives them, one per original.
    let input: String = originals.iter().map(|a| format!("{a}\n")).collect();
    let (code, images, _) = anonymize(&key, &input);
    assert_eq!(code, Some(0));
    let images: Vec<&str> = images.lines().collect();
    let mut seen_images = 0;
    for (orig, image) in originals.iter().zip(&images) {
        // An original may equal some other address's image by chance; it
        // may not appear as itself unless it is also an image.
        if exported_addrs.contains(orig) {
            assert!(
                images.contains(&orig.as_str()),
                "original {orig} left in the export"
            );
        }
        if exported_addrs.contains(*image) {
            seen_images += 1;
        }
    }
    assert!(
        seen_images * 10 >= originals.len() * 9,
        "{seen_images} of {} images found",
        originals.len()
    );
    // No credentials travel.
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("\"password\"") && !text.contains("\"user\""));
}
