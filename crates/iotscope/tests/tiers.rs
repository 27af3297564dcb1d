//! Years of darknet data (issue 19): hourly and daily rollups built as
//! captures are stored, reports that read a tier and say which, retention
//! by tier from the command line, and the dashboard's series reading the
//! rollups for long periods; on SQLite and, when a server is given
//! (`IOTSCOPE_TEST_POSTGRES`), on PostgreSQL with the same answers.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;

fn iotscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

fn run(args: &[&str]) -> serde_json::Value {
    let o = iotscope().args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let o = iotscope().args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{args:?} did not fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Two captures of 30 hours from 2016-10-01T00:00Z, in one-minute buckets.
fn fill(dir: &Path, db: &str) {
    for (name, seed) in [("a.pcap", "5"), ("b.pcap", "6")] {
        let out = dir.join(name);
        let o = iotscope()
            .args(["lab", "darknet", "--packets", "20000", "--seed", seed])
            .args(["--start", "2016-10-01T00:00:00Z", "--duration", "30h"])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = iotscope()
            .args(["telescope", "analyze", "--no-detect", "--bucket", "1m"])
            .args(["--darknet", "198.18.0.0/15", "--db", db])
            .arg(&out)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

fn report(db: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "telescope",
        "report",
        "--format",
        "json",
        "--top",
        "1000",
        "--db",
        db,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// The figures every tier gives alike.
fn figures(r: &serde_json::Value) -> serde_json::Value {
    serde_json::json!([
        r["packets"],
        r["bytes"],
        r["sources"],
        r["first_ts"],
        r["last_ts"],
        r["classes"],
        r["ports"],
        r["top_sources"],
        r["infected"],
        r["fingerprints"]
    ])
}

/// Everything the scenario saw, to compare engines.
fn scenario(dir: &Path, db: &str) -> Vec<serde_json::Value> {
    fill(dir, db);
    let raw = report(db, &[]);
    assert_eq!(raw["tier"], "bucket");
    assert_eq!(raw["bucket_seconds"], 60.0);
    let hour = report(db, &["--tier", "hour"]);
    let day = report(db, &["--tier", "day"]);
    assert_eq!(
        (hour["tier"].as_str(), day["tier"].as_str()),
        (Some("hour"), Some("day"))
    );
    assert_eq!(hour["series"].as_array().unwrap().len(), 30);
    assert_eq!(day["series"].as_array().unwrap().len(), 2);
    assert_eq!(figures(&hour), figures(&raw));
    assert_eq!(figures(&day), figures(&raw));
    // An hour of the hourly series is what the buckets of that hour give.
    let one = report(
        db,
        &[
            "--since",
            "2016-10-01T05:00:00Z",
            "--until",
            "2016-10-01T06:00:00Z",
        ],
    );
    assert_eq!(hour["series"][5]["packets"], one["packets"]);
    assert_eq!(hour["series"][5]["sources"], one["sources"]);
    // Not on whole days: the daily tier says so.
    let e = fails(&[
        "telescope",
        "report",
        "--db",
        db,
        "--tier",
        "day",
        "--since",
        "2016-10-01T05:00:00Z",
    ]);
    assert!(e.contains("is not on a whole day"), "{e}");
    // Retention: buckets kept 12 hours at the end of the second day.
    let pruned = run(&[
        "store",
        "prune",
        "--format",
        "json",
        "--db",
        db,
        "--keep-bucket",
        "12h",
        "--now",
        "2016-10-02T12:00:00Z",
    ]);
    assert_eq!(pruned["tiers"][0]["tier"], "bucket");
    assert_eq!(pruned["tiers"][0]["before"], "2016-10-02T00:00:00Z");
    // The first day's minutes that had frames.
    let periods = pruned["tiers"][0]["periods"].as_u64().unwrap();
    assert!((1400..=1440).contains(&periods), "{pruned}");
    let after = report(db, &[]);
    assert_eq!(after["tier"], "hour");
    assert_eq!(figures(&after), figures(&raw));
    assert_eq!(after["series"], hour["series"]);
    let e = fails(&["telescope", "report", "--db", db, "--tier", "bucket"]);
    assert!(
        e.contains("the bucket tier holds periods from 2016-10-02T00:00:00Z"),
        "{e}"
    );
    // The second day's buckets are still there.
    let late = report(db, &["--since", "2016-10-02"]);
    assert_eq!(late["tier"], "bucket");
    // A capture of the first day written after the prune: the buckets do
    // not take its periods (past their retention), the hours and days do,
    // and every report still answers, with its frames counted once.
    let out = dir.join("c.pcap");
    let o = iotscope()
        .args(["lab", "darknet", "--packets", "3000", "--seed", "7"])
        .args([
            "--start",
            "2016-10-01T03:00:00Z",
            "--duration",
            "2h",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = iotscope()
        .args(["telescope", "analyze", "--no-detect", "--bucket", "1m"])
        .args(["--darknet", "198.18.0.0/15", "--format", "json", "--db", db])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("older than the store keeps its bucket tier"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let added: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let more = report(db, &[]);
    assert_eq!(more["tier"], "hour");
    assert_eq!(
        more["packets"].as_u64().unwrap(),
        raw["packets"].as_u64().unwrap() + added["packets"].as_u64().unwrap()
    );
    assert_eq!(report(db, &["--tier", "day"])["packets"], more["packets"]);
    // Rollups kept less long than what they replace: refused.
    let e = fails(&[
        "store",
        "prune",
        "--db",
        db,
        "--keep-bucket",
        "30d",
        "--keep-hour",
        "1d",
    ]);
    assert!(e.contains("kept for less time"), "{e}");
    let mut pruned = pruned;
    pruned.as_object_mut().unwrap().remove("db");
    vec![raw, hour, day, pruned, after, late, more]
}

#[test]
fn rollups_answer_as_the_buckets_and_retention_keeps_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    scenario(dir.path(), db.to_str().unwrap());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_rollups_and_retention_answer_as_sqlite() {
    let Some(url) = iotscope_store::testing::fresh_database("tiers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("s.db");
    let want = scenario(dir.path(), lite.to_str().unwrap());
    let got = scenario(dir.path(), &url);
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert!(w == g, "answer {i} differs between the engines");
    }
}

/// The dashboard's series of eight days of one-minute buckets (11,520 of
/// them, past its 10,000 points) reads the hourly rollups: 192 exact
/// points, each hour's unique sources those of its buckets.
#[test]
fn a_long_series_on_the_dashboard_reads_the_hours() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, db, cfg) = (
        dir.path().join("w.pcap"),
        dir.path().join("w.db"),
        dir.path().join("c.toml"),
    );
    let o = iotscope()
        .args(["lab", "darknet", "--packets", "30000", "--seed", "3"])
        .args([
            "--start",
            "2016-10-01T00:00:00Z",
            "--duration",
            "8d",
            "--out",
        ])
        .arg(&cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = iotscope()
        .args(["telescope", "analyze", "--no-detect", "--bucket", "1m"])
        .args(["--darknet", "198.18.0.0/15", "--db"])
        .arg(&db)
        .arg(&cap)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&cfg, "").unwrap();
    let server = common::Server::start(&cfg, &db, &[]);
    let s = common::http(None, server.port, "GET", "/api/series?ports=23", &[], None).json();
    assert_eq!(
        (s["tier"].as_str(), s["sources_merged_by"].as_str()),
        (Some("hour"), Some("none")),
        "{s}"
    );
    assert_eq!(s["bucket_seconds"], 3600.0);
    assert_eq!(s["buckets"], 8 * 24);
    let hours = report(
        db.to_str().unwrap(),
        &["--tier", "hour", "--port", "23/tcp"],
    );
    let line = &s["series"][0];
    for (i, row) in hours["series"].as_array().unwrap().iter().enumerate() {
        let port = row["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == 23);
        let (packets, sources) = port.map_or((0, 0), |p| {
            (
                p["packets"].as_u64().unwrap(),
                p["sources"].as_u64().unwrap(),
            )
        });
        assert_eq!(line["packets"][i].as_u64(), Some(packets), "hour {i}");
        assert_eq!(line["sources"][i].as_u64(), Some(sources), "hour {i}");
    }
    let o = common::http(
        None,
        server.port,
        "GET",
        "/api/overview?period=all",
        &[],
        None,
    )
    .json();
    assert_eq!(o["tier"], "day", "{o}");
    assert_eq!(o["bucket_seconds"], 60.0);
}
