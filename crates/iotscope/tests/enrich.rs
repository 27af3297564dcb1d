//! The telescope's AS breakdown when an AS table is configured: every source
//! lands in exactly one AS row, and the rows add up to what the full source
//! list says, for `analyze` and for `report` from the store.

use std::collections::HashMap;
use std::process::Command;

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

#[test]
fn by_as_rows_add_up_to_the_sources() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("d.pcap");
    assert!(bin()
        .args([
            "lab",
            "darknet",
            "--packets",
            "30000",
            "--seed",
            "8",
            "--out"
        ])
        .arg(&pcap)
        .status()
        .unwrap()
        .success());
    // Two halves of IPv4 in two ASes; the rest (IPv6) is in none.
    let table = dir.path().join("asn.csv");
    std::fs::write(&table, "0.0.0.0,127.255.255.255,64500,Low Half\n128.0.0.0,255.255.255.255,64501,\"High Half, Inc.\"\n").unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[enrich]\nasn = [\"{}\"]\nasn_format = \"csv\"\n",
            table.display()
        ),
    )
    .unwrap();
    let db = dir.path().join("t.db");
    let darknets = ["--darknet", "198.18.0.0/16", "--darknet", "2001:db8:1::/48"];
    let analyze = |with_cfg: bool, top: &str| -> Value {
        let mut c = bin();
        if with_cfg {
            c.arg("--config").arg(&cfg);
        }
        let out = c
            .args(["telescope", "analyze", "--format", "json", "--top", top])
            .args(darknets)
            .arg(&pcap)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Expected per AS from the full list of sources.
    let full = analyze(false, "1000000");
    let infected: std::collections::HashSet<&str> = full["infected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ip"].as_str().unwrap())
        .collect();
    let mut want: HashMap<u64, (u64, u64, u64)> = HashMap::new();
    for s in full["top_sources"].as_array().unwrap() {
        let ip = s["ip"].as_str().unwrap();
        let asn = match ip.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(a) if a.octets()[0] < 128 => 64500,
            std::net::IpAddr::V4(_) => 64501,
            _ => 0,
        };
        let e = want.entry(asn).or_default();
        e.0 += 1;
        e.1 += s["packets"].as_u64().unwrap();
        e.2 += u64::from(infected.contains(ip));
    }
    let check = |v: &Value| {
        let rows = v["by_as"].as_array().unwrap();
        assert_eq!(rows.len(), want.len(), "{rows:?}");
        for r in rows {
            let w = want[&r["asn"].as_u64().unwrap()];
            assert_eq!(
                (
                    r["sources"].as_u64().unwrap(),
                    r["packets"].as_u64().unwrap(),
                    r["infected"].as_u64().unwrap()
                ),
                w,
                "{r}"
            );
        }
        let total: u64 = rows.iter().map(|r| r["sources"].as_u64().unwrap()).sum();
        assert_eq!(total, full["sources"].as_u64().unwrap());
    };
    let with_table = analyze(true, "10");
    check(&with_table);
    // The CSV carries the same rows.
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["telescope", "analyze", "--format", "csv"])
        .args(darknets)
        .arg(&pcap)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    for r in with_table["by_as"].as_array().unwrap() {
        let row = format!("as,AS{},,,,{},{}", r["asn"], r["packets"], r["sources"]);
        assert!(csv.lines().any(|l| l == row), "{row} not in the CSV");
    }
    // The same from the store.
    let out = bin()
        .args(["telescope", "analyze", "--format", "json"])
        .args(darknets)
        .arg("--db")
        .arg(&db)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["telescope", "report", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(&serde_json::from_slice(&out.stdout).unwrap());
    // Without a table there is no breakdown.
    assert!(full.get("by_as").is_none());
}
