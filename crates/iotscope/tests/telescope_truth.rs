//! End to end: the lab generates a capture with its ground truth; the
//! telescope must report every count exactly, in both container formats,
//! compressed, from standard input, and through the store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run iotscope");
    assert!(
        out.status.success(),
        "failed: {:?}\nstderr: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn generate(dir: &Path, name: &str, packets: u64, seed: u64, format: &str) -> (PathBuf, Value) {
    lab_darknet(
        dir,
        name,
        &[
            "--packets",
            &packets.to_string(),
            "--seed",
            &seed.to_string(),
            "--format",
            format,
        ],
    )
}

/// `lab darknet --out DIR/NAME ARGS`: the capture and its truth.
fn lab_darknet(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, Value) {
    let pcap = dir.join(name);
    run_ok(
        bin()
            .args(["lab", "darknet", "--out"])
            .arg(&pcap)
            .args(args),
    );
    let truth: Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.truth.json"))).unwrap())
            .unwrap();
    (pcap, truth)
}

const DARKNETS: [&str; 4] = ["--darknet", "198.18.0.0/16", "--darknet", "2001:db8:1::/48"];

fn analyze(args: &[&std::ffi::OsStr]) -> Value {
    let out = run_ok(
        bin()
            .args([
                "telescope",
                "analyze",
                "--format",
                "json",
                "--top",
                "100000",
            ])
            .args(DARKNETS)
            .args(args),
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// Compares a report with the truth, field by field, exactly.
fn assert_matches_truth(got: &Value, truth: &Value) {
    for key in ["packets", "bytes", "sources", "outside", "malformed"] {
        assert_eq!(got[key], truth[key], "{key}");
    }
    let ts = |us: &Value| {
        let us = us.as_i64().unwrap();
        let secs = us.div_euclid(1_000_000);
        let frac = us.rem_euclid(1_000_000);
        (secs, frac)
    };
    let (s, f) = ts(&truth["first_ts_us"]);
    let first = got["first_ts"].as_str().unwrap();
    let parsed = humantime_like(first);
    assert_eq!(parsed, (s, f), "first_ts {first}");
    assert_eq!(got["classes"].as_object().unwrap().len(), 11);
    for (name, c) in truth["classes"].as_object().unwrap() {
        assert_eq!(&got["classes"][name], c, "class {name}");
    }
    for (name, c) in truth["fingerprints"].as_object().unwrap() {
        assert_eq!(&got["fingerprints"][name], c, "fingerprint {name}");
    }
    assert_eq!(got["ports"], truth["ports"], "ports");
    let hosts = |v: &Value| -> Vec<(String, u64, Value)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["ip"].as_str().unwrap().to_string(),
                    i["packets"].as_u64().unwrap(),
                    i["ports"].clone(),
                )
            })
            .collect()
    };
    let (infected, want) = (hosts(&got["infected"]), hosts(&truth["infected"]));
    assert_eq!(infected.len(), want.len(), "number of infected hosts");
    assert_eq!(infected, want, "infected hosts");
    let series = got["series"].as_array().unwrap();
    let want = truth["series"].as_array().unwrap();
    assert_eq!(series.len(), want.len(), "buckets");
    for (g, w) in series.iter().zip(want) {
        assert_eq!(
            humantime_like(g["start"].as_str().unwrap()).0,
            w["start_s"].as_i64().unwrap()
        );
        assert_eq!(g["packets"], w["packets"], "bucket {}", g["start"]);
        assert_eq!(g["sources"], w["sources"], "bucket {}", g["start"]);
        assert_eq!(g["ports"], w["ports"], "bucket ports {}", g["start"]);
    }
}

/// Parses the RFC 3339 UTC stamps we print into (seconds, microseconds).
fn humantime_like(s: &str) -> (i64, i64) {
    let (date, time) = s.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let micros: i64 = format!("{:0<6}", &frac[..frac.len().min(6)])
        .parse()
        .unwrap();
    (days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2], micros)
}

#[test]
fn pcap_counts_match_the_truth_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate(dir.path(), "a.pcap", 60_000, 7, "pcap");
    assert!(truth["infected"].as_array().unwrap().len() > 100);
    assert!(truth["fingerprints"]["zmap"]["sources"].as_u64().unwrap() > 0);
    assert!(
        truth["fingerprints"]["masscan"]["sources"]
            .as_u64()
            .unwrap()
            > 0
    );
    let got = analyze(&[pcap.as_os_str()]);
    assert_matches_truth(&got, &truth);
}

#[test]
fn pcapng_with_two_link_types_matches_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate(dir.path(), "b.pcapng", 40_000, 11, "pcapng");
    let got = analyze(&[pcap.as_os_str()]);
    assert_matches_truth(&got, &truth);
}

#[test]
fn gzip_from_standard_input_matches_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate(dir.path(), "c.pcap", 20_000, 3, "pcap");
    let gz = Command::new("gzip")
        .arg("-c")
        .arg(&pcap)
        .output()
        .expect("gzip installed");
    let mut child = bin()
        .args([
            "telescope",
            "analyze",
            "--format",
            "json",
            "--top",
            "100000",
        ])
        .args(DARKNETS)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&gz.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_matches_truth(&serde_json::from_slice(&out.stdout).unwrap(), &truth);
}

#[test]
fn files_in_reverse_time_order_still_count_exactly() {
    // Two captures of different days given newest first: per-bucket unique
    // counts must not depend on arrival order.
    let dir = tempfile::tempdir().unwrap();
    let (early, _) = generate(dir.path(), "early.pcap", 5_000, 5, "pcap");
    let (late, _) = lab_darknet(
        dir.path(),
        "late.pcap",
        &[
            "--packets",
            "5000",
            "--seed",
            "5",
            "--start",
            "2016-10-03T00:00:00Z",
        ],
    );
    let forward = analyze(&[early.as_os_str(), late.as_os_str()]);
    let backward = analyze(&[late.as_os_str(), early.as_os_str()]);
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("files");
        v
    };
    assert_eq!(strip(forward.clone()), strip(backward));
    // Same seed, so the same sources on both days: sources equal one day's.
    let one = analyze(&[early.as_os_str()]);
    assert_eq!(forward["sources"], one["sources"]);
    assert_eq!(
        forward["packets"].as_u64().unwrap(),
        2 * one["packets"].as_u64().unwrap()
    );
}

#[test]
fn truncated_file_reports_offset_keeps_what_was_read_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, _) = generate(dir.path(), "t.pcap", 2_000, 9, "pcap");
    let bytes = std::fs::read(&pcap).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 30]).unwrap();
    let db = dir.path().join("t.db");
    let out = bin()
        .args(["telescope", "analyze", "--format", "json", "--db"])
        .arg(&db)
        .arg(&cut)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cut.pcap") && stderr.contains("byte offset"),
        "{stderr}"
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = got["files"][0]["frames"].as_u64().unwrap();
    assert_eq!(read, 1_999);
    assert_eq!(got["files"][0]["status"], "partial");
    // The store kept what was read.
    let rep = run_ok(
        bin()
            .args(["telescope", "report", "--format", "json", "--db"])
            .arg(&db),
    );
    let rep: Value = serde_json::from_slice(&rep.stdout).unwrap();
    assert_eq!(rep["packets"], got["packets"]);
}

/// The `status` of every entry of a report's `files`.
fn statuses(report: &Value) -> Vec<&str> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect()
}

/// Issue 16: every input is listed with what happened to it, after a
/// damaged one (the run stops there) and when one cannot be opened (the run
/// does not start).
#[test]
fn every_input_is_listed_with_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = generate(dir.path(), "good.pcap", 100, 3, "pcap");
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let later = dir.path().join("later.pcap");
    std::fs::copy(&good, &later).unwrap();
    let out = bin()
        .args(["telescope", "analyze", "--format", "json"])
        .args([&good, &cut, &later])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(statuses(&got), ["complete", "partial", "skipped"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 later input was not read") && stderr.contains("later.pcap"),
        "{stderr}"
    );

    // A file that opens but is damaged from its first byte was read (to
    // nothing): partial, not unreadable.
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"not a capture at all").unwrap();
    let out = bin()
        .args(["telescope", "analyze", "--format", "json"])
        .args([&good, &junk, &later])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(statuses(&got), ["complete", "partial", "skipped"]);

    // A path that cannot be opened: nothing is read, every input listed.
    let missing = dir.path().join("missing.pcap");
    let out = bin()
        .args(["telescope", "analyze", "--format", "json"])
        .args([&good, &missing, dir.path()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["packets"], 0);
    let files = got["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[0]["status"], "skipped");
    assert_eq!(files[1]["status"], "unreadable");
    assert_eq!(files[2]["status"], "unreadable");
    assert!(files[2]["error"].as_str().unwrap().contains("directory"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.pcap"), "{stderr}");
}

#[test]
fn not_a_capture_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "hello, this is not a capture").unwrap();
    let out = bin()
        .args(["telescope", "analyze"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notes.txt") && stderr.contains("not a pcap"),
        "{stderr}"
    );
}

#[test]
fn store_accumulates_skips_duplicates_and_reports_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate(dir.path(), "s.pcap", 30_000, 21, "pcap");
    let db = dir.path().join("s.db");
    let direct = analyze(&[pcap.as_os_str(), "--db".as_ref(), db.as_os_str()]);
    assert_matches_truth(&direct, &truth);
    // The same content again: skipped, not counted twice.
    let copy = dir.path().join("copy.pcap");
    std::fs::copy(&pcap, &copy).unwrap();
    let again = analyze(&[copy.as_os_str(), "--db".as_ref(), db.as_os_str()]);
    assert_eq!(again["files"][0]["status"], "duplicate");
    let rep = common::telescope_report(&db);
    // One ingest: every figure is exact and equals the truth.
    assert_matches_truth(&rep, &truth);
    assert_eq!(rep["estimated"], serde_json::json!([]));

    // A second, different capture accumulates.
    let (other, truth2) = generate(dir.path(), "o.pcap", 10_000, 22, "pcap");
    analyze(&[other.as_os_str(), "--db".as_ref(), db.as_os_str()]);
    let rep = run_ok(
        bin()
            .args(["telescope", "report", "--format", "json", "--db"])
            .arg(&db),
    );
    let rep: Value = serde_json::from_slice(&rep.stdout).unwrap();
    let sum = |k: &str| truth[k].as_u64().unwrap() + truth2[k].as_u64().unwrap();
    assert_eq!(rep["packets"].as_u64().unwrap(), sum("packets"));
    assert_eq!(
        rep["classes"]["tcp_syn"]["packets"].as_u64().unwrap(),
        truth["classes"]["tcp_syn"]["packets"].as_u64().unwrap()
            + truth2["classes"]["tcp_syn"]["packets"].as_u64().unwrap()
    );

    // A time window and a port filter.
    let rep = run_ok(
        bin()
            .args([
                "telescope",
                "report",
                "--format",
                "json",
                "--port",
                "2323/tcp",
                "--since",
                "2016-10-01T02:00:00Z",
                "--until",
                "2016-10-01T03:00:00Z",
                "--db",
            ])
            .arg(&db),
    );
    let rep: Value = serde_json::from_slice(&rep.stdout).unwrap();
    assert_eq!(rep["series"].as_array().unwrap().len(), 1);
    assert_eq!(rep["ports"].as_array().unwrap().len(), 1);
    assert_eq!(rep["ports"][0]["port"], 2323);
}

#[test]
fn csv_and_table_formats_render() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate(dir.path(), "f.pcap", 3_000, 2, "pcap");
    let out = run_ok(
        bin()
            .args(["telescope", "analyze", "--format", "csv"])
            .args(DARKNETS)
            .arg(&pcap),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("section,name,proto,port,start,packets,sources\n"));
    let syn = text
        .lines()
        .find(|l| l.starts_with("class,tcp_syn,"))
        .unwrap();
    let fields: Vec<&str> = syn.split(',').collect();
    assert_eq!(
        fields[5].parse::<u64>().unwrap(),
        truth["classes"]["tcp_syn"]["packets"].as_u64().unwrap()
    );
    let out = run_ok(bin().args(["telescope", "analyze"]).arg(&pcap));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Packet classes") && text.contains("Infected hosts"));
}

#[test]
fn any_number_of_threads_gives_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate(dir.path(), "t.pcapng", 30_000, 13, "pcapng");
    let one = analyze(&[pcap.as_os_str(), "--threads".as_ref(), "1".as_ref()]);
    assert_matches_truth(&one, &truth);
    for n in ["2", "3", "5"] {
        let many = analyze(&[pcap.as_os_str(), "--threads".as_ref(), n.as_ref()]);
        assert_eq!(many, one, "--threads {n}");
    }
}

/// `lab darknet --outbreak`: infected hosts start over the capture, more
/// later, so the telescope's unique sources on 23/tcp rise from the first
/// day to the last; and the counts still match the generator's truth.
#[test]
fn an_outbreak_capture_rises_and_matches_its_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = lab_darknet(
        dir.path(),
        "o.pcap",
        &[
            "--packets",
            "60000",
            "--seed",
            "11",
            "--duration",
            "3d",
            "--outbreak",
        ],
    );
    let got = analyze(&[pcap.as_os_str()]);
    assert_matches_truth(&got, &truth);
    let on23 = |b: &Value| {
        b["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == 23 && p["proto"] == "tcp")
            .map_or(0, |p| p["sources"].as_u64().unwrap())
    };
    let series = got["series"].as_array().unwrap();
    assert!(series.len() >= 70, "{}", series.len());
    let first: u64 = series[..24].iter().map(on23).sum();
    let last: u64 = series[series.len() - 24..].iter().map(on23).sum();
    assert!(last > 2 * first, "first day {first}, last day {last}");
}

/// `lab darknet --flood`: one frame per spoofed source; the telescope, the
/// store and the report over it all count every source once, exactly.
#[test]
fn a_spoofed_flood_matches_its_truth_in_memory_and_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = lab_darknet(
        dir.path(),
        "f.pcap",
        &["--packets", "40000", "--seed", "5", "--flood"],
    );
    assert_eq!(truth["sources"], 40_000, "one source per frame");
    let db = dir.path().join("f.db");
    let got = analyze(&[pcap.as_os_str(), "--db".as_ref(), db.as_os_str()]);
    assert_matches_truth(&got, &truth);
    let mut rep = common::telescope_report(&db);
    // Over several buckets, a port's sources past 8192 are a HyperLogLog
    // union (docs/telescope-json.md): within 2%, and flagged.
    for (got, want) in rep["ports"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(truth["ports"].as_array().unwrap())
    {
        let (g, w) = (
            got["sources"].as_u64().unwrap(),
            want["sources"].as_u64().unwrap(),
        );
        if got.get("sources_estimated") == Some(&Value::Bool(true)) {
            assert!(w > 8192 && g.abs_diff(w) * 50 <= w, "{got} against {want}");
            got["sources"] = want["sources"].clone();
            got.as_object_mut().unwrap().remove("sources_estimated");
        }
    }
    assert_matches_truth(&rep, &truth);
    assert_eq!(rep["top_sources"].as_array().unwrap().len(), 40_000);
}

/// Issue 16: frames of a link type the decoder does not know are counted
/// as `non_ip` and the report names the type.
#[test]
fn unknown_link_types_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("user0.pcap");
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 147] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for i in 0..3u32 {
        for v in [1_700_000_000 + i, 0, 4, 4] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
    }
    std::fs::write(&cap, out).unwrap();
    let o = run_ok(
        bin()
            .args(["telescope", "analyze", "--format", "json"])
            .arg(&cap),
    );
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["unknown_link_types"]["147"], 3, "{got}");
    assert_eq!(got["classes"]["non_ip"]["packets"], 3);
    let o = run_ok(bin().args(["telescope", "analyze"]).arg(&cap));
    assert!(String::from_utf8_lossy(&o.stdout).contains("147 (3 frames)"));
}

/// A pcapng simple packet block before any timed packet has no time: it is
/// counted in no bucket, and the warning says why instead of calling it
/// "stamped" in 1970.
#[test]
fn an_untimed_leading_frame_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("spb.pcapng");
    let block = |kind: u32, body: &[u8]| {
        let len = 12 + body.len() as u32;
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    };
    // A raw IPv4 UDP datagram, 28 bytes.
    let ip: Vec<u8> = vec![
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 203, 0, 113, 8, 198, 18, 0, 1, 0x30, 0x39, 0, 53,
        0, 8, 0, 0,
    ];
    let mut out = block(
        0x0a0d_0d0a,
        &[
            0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    out.extend(block(1, &[101, 0, 0, 0, 0, 0, 0, 0])); // raw IP, no snaplen
    let mut spb = 28u32.to_le_bytes().to_vec();
    spb.extend_from_slice(&ip);
    out.extend(block(3, &spb));
    // An enhanced packet block at 2023-11-14T22:13:20Z (microseconds).
    let us: u64 = 1_700_000_000 * 1_000_000;
    let mut epb = vec![0u8; 4];
    epb.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
    epb.extend_from_slice(&(us as u32).to_le_bytes());
    epb.extend_from_slice(&28u32.to_le_bytes());
    epb.extend_from_slice(&28u32.to_le_bytes());
    epb.extend_from_slice(&ip);
    out.extend(block(6, &epb));
    std::fs::write(&cap, out).unwrap();
    let o = run_ok(
        bin()
            .args(["telescope", "analyze", "--format", "json"])
            .arg(&cap),
    );
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["packets"], 2, "{got}");
    assert_eq!(got["implausible_time"], 1, "{got}");
    assert_eq!(got["series"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["first_ts"], "2023-11-14T22:13:20Z");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("1 frame from pcapng simple packet blocks, which carry no time"),
        "{err}"
    );
}
