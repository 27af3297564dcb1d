//! The PostgreSQL store from the command line (issue 19): several writer
//! processes at once count every capture exactly once, a writer killed in
//! the middle of its write leaves nothing of it, and the stored report is
//! the one an SQLite store of the same captures gives.
//!
//! Needs a server: `IOTSCOPE_TEST_POSTGRES` (`.ci/run` starts one).
#![cfg(feature = "postgres")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn iotscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

/// Writes a generated darknet capture.
fn capture(dir: &Path, name: &str, packets: u32, seed: u32, start: &str, flood: bool) -> PathBuf {
    let out = dir.join(name);
    let mut c = iotscope();
    c.args(["lab", "darknet", "--packets", &packets.to_string()])
        .args([
            "--seed",
            &seed.to_string(),
            "--start",
            start,
            "--duration",
            "3h",
        ])
        .arg("--out")
        .arg(&out);
    if flood {
        c.arg("--flood");
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn analyze(db: &str, files: &[&Path]) -> std::process::Output {
    iotscope()
        .args(["telescope", "analyze", "--no-detect", "--db", db])
        .args(files)
        .stdout(Stdio::null())
        .output()
        .unwrap()
}

fn report(db: &str) -> serde_json::Value {
    let o = iotscope()
        .args([
            "telescope",
            "report",
            "--format",
            "json",
            "--top",
            "20",
            "--db",
            db,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn count(url: &str, sql: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn concurrent_writers_count_each_capture_once_and_report_as_sqlite() {
    let Some(url) = iotscope_store::testing::fresh_database("writers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Four captures whose hours overlap (their buckets merge in the
    // store), each written by its own process; a fifth process writes the
    // first capture again at the same time.
    let files: Vec<PathBuf> = (0..4)
        .map(|i| {
            capture(
                dir.path(),
                &format!("c{i}.pcap"),
                20_000,
                i + 1,
                &format!("2016-10-01T0{i}:00:00Z"),
                false,
            )
        })
        .collect();
    let children: Vec<_> = files
        .iter()
        .chain(std::iter::once(&files[0]))
        .map(|f| {
            iotscope()
                .args(["telescope", "analyze", "--no-detect", "--db", &url])
                .arg(f)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(count(&url, "SELECT COUNT(*) FROM files"), 4);
    // The same captures one after another into SQLite.
    let lite = dir.path().join("lite.db");
    let lite = lite.to_str().unwrap();
    for f in &files {
        let o = analyze(lite, &[f]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (pg, sq) = (report(&url), report(lite));
    assert_eq!(pg["packets"], 80_000);
    assert_eq!(pg, sq, "PostgreSQL and SQLite stores report differently");
    // And a run of all four at once into either store agrees.
    let once = dir.path().join("once.db");
    let o = analyze(
        once.to_str().unwrap(),
        &files.iter().map(|f| f.as_path()).collect::<Vec<_>>(),
    );
    assert!(o.status.success());
    assert_eq!(report(once.to_str().unwrap())["packets"], 80_000);
}

#[test]
fn a_writer_killed_while_writing_leaves_nothing_of_its_run() {
    let Some(url) = iotscope_store::testing::fresh_database("killed") else {
        return;
    };
    // The schema first, so that every run below is killed in its write,
    // not while it migrates.
    iotscope_store::PgStore::open(&url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A spoofed flood: many sources, so the write takes a while.
    let flood = capture(
        dir.path(),
        "flood.pcap",
        300_000,
        7,
        "2016-10-01T00:00:00Z",
        true,
    );
    let mut killed_while_writing = false;
    for _ in 0..5 {
        let mut child = iotscope()
            .args(["telescope", "analyze", "--no-detect", "--db", &url])
            .arg(&flood)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The run's write holds the store's advisory lock: kill it then.
        let mut watcher = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let started = Instant::now();
        let mut writing = false;
        while started.elapsed() < Duration::from_secs(60) {
            let n: i64 = watcher
                .query_one(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                       AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1",
                    &[&iotscope_store::PgStore::WRITE_LOCK],
                )
                .unwrap()
                .get(0);
            if n > 0 {
                writing = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if writing {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        // The server notices the closed connection and rolls back.
        let deadline = Instant::now() + Duration::from_secs(20);
        while count(&url, "SELECT COUNT(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' OR (state = 'active' AND query LIKE 'INSERT%')") > 0
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let files = count(&url, "SELECT COUNT(*) FROM files");
        let buckets = count(&url, "SELECT COUNT(*) FROM buckets");
        let blocks = count(&url, "SELECT COUNT(*) FROM bucket_source_blocks");
        if writing && files == 0 {
            assert_eq!(
                (buckets, blocks),
                (0, 0),
                "a killed run left part of itself"
            );
            killed_while_writing = true;
            break;
        }
        // The run finished before the kill landed: start again empty.
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(
            "TRUNCATE files, buckets, bucket_classes, bucket_port_blocks, bucket_port_sketches,
             bucket_source_blocks, port_source_blocks, infected_port_blocks, settings",
        )
        .unwrap();
    }
    assert!(killed_while_writing, "never caught a run in its write");
    // The capture is not marked ingested: a new run stores all of it once.
    let o = analyze(&url, &[&flood]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(report(&url)["packets"], 300_000);
    let o = analyze(&url, &[&flood]);
    assert!(o.status.success());
    assert_eq!(report(&url)["packets"], 300_000, "counted twice");
}

#[test]
fn a_postgres_url_is_refused_clearly_when_the_server_is_not_there() {
    // A port nothing listens on (bound and released at once).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://scanner:s3cret@127.0.0.1:{port}/iotscope");
    let o = iotscope()
        .args(["telescope", "report", "--db", &url])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("s3cret"), "the password is shown: {err}");
}

mod common;

fn survey_status(db: &str) -> serde_json::Value {
    let o = iotscope()
        .args(["survey", "status", "--format", "json", "--db", db])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_survey_in_three_shards_fills_one_store_and_says_when_it_is_complete() {
    let Some(url) = iotscope_store::testing::fresh_database("shards") else {
        return;
    };
    let subnet = "127.78.60.0/24";
    let lab = common::RunningLab::start(subnet, 24, 5);
    let dir = tempfile::tempdir().unwrap();
    let sweep = |db: &str, shard: &str| {
        iotscope()
            .args(["survey", "--targets", subnet, "--ports", "23,80,502"])
            .args([
                "--rate", "0", "--seed", "11", "--shard", shard, "--checks", "panels",
            ])
            .args(["--timeout", "1s", "--db", db])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Two of the three shards at once, on "two scanners".
    let first: Vec<_> = ["0/3", "1/3"].iter().map(|s| sweep(&url, s)).collect();
    for c in first {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let status = survey_status(&url);
    assert_eq!(status.as_array().unwrap().len(), 1);
    assert_eq!(status[0]["complete"], false);
    assert_eq!(status[0]["missing"], serde_json::json!([2]));
    // A shard of another shape into the same run is refused.
    let o = iotscope()
        .args([
            "survey",
            "--targets",
            subnet,
            "--ports",
            "23,80,502",
            "--rate",
            "0",
        ])
        .args(["--seed", "12", "--shard", "2/3", "--db", &url])
        .args(["--run", status[0]["run"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("one seed"));
    let o = sweep(&url, "2/3").wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let status = survey_status(&url);
    assert_eq!(status[0]["complete"], true, "{status:#}");
    assert_eq!(status[0]["pairs"], 256 * 3);
    assert_eq!(status[0]["sent"], 256 * 3);
    // The shards together found what one unsharded sweep finds.
    let whole = dir.path().join("whole.db");
    let whole = whole.to_str().unwrap();
    let o = sweep(whole, "0/1").wait_with_output().unwrap();
    assert!(o.status.success());
    let sharded = survey_status(&url)[0]["open"].as_u64().unwrap();
    assert_eq!(survey_status(whole)[0]["open"].as_u64().unwrap(), sharded);
    assert!(sharded > 0);
    let findings = |db: &str| {
        let o = iotscope()
            .args(["findings", "--format", "json", "--db", db])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
        for f in &mut v {
            f.as_object_mut()
                .unwrap()
                .retain(|k, _| k == "ip" || k == "port" || k == "kind");
        }
        v
    };
    let (a, b) = (findings(&url), findings(whole));
    assert!(!a.is_empty());
    assert_eq!(a, b);
    drop(lab);
}

#[test]
fn reading_commands_call_an_empty_database_no_store_and_leave_it_empty() {
    let Some(url) = iotscope_store::testing::fresh_database("nostore") else {
        return;
    };
    for args in [
        vec!["findings", "--db", &url],
        vec!["telescope", "report", "--db", &url],
        vec!["store", "copy", "--from", &url, "--to", "/nonexistent/x.db"],
    ] {
        let o = iotscope().args(&args).output().unwrap();
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("no store") || err.contains("does not exist"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        count(
            &url,
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        0
    );
}
