//! End to end: `telescope analyze --db` counts every capture's content once,
//! whether it comes twice in one run, from several processes at once, or
//! into a store that several processes create at the same moment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

/// `lab darknet` capture of `packets` frames.
fn generate(dir: &Path, name: &str, packets: u64, seed: u64) -> PathBuf {
    let pcap = dir.join(name);
    run_ok(bin().args(["lab", "darknet", "--out"]).arg(&pcap).args([
        "--packets",
        &packets.to_string(),
        "--seed",
        &seed.to_string(),
    ]));
    pcap
}

/// `telescope analyze FILE... [--db DB] --format json`, not yet waited for.
fn analyze_cmd(files: &[&Path], db: Option<&Path>) -> Command {
    let mut cmd = bin();
    cmd.args([
        "telescope",
        "analyze",
        "--darknet",
        "198.18.0.0/16",
        "--format",
        "json",
        "--top",
        "100000",
        "--threads",
        "1",
    ])
    .args(files);
    if let Some(db) = db {
        cmd.arg("--db").arg(db);
    }
    cmd
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// `telescope report --db DB --format json` over everything.
fn report(db: &Path) -> Value {
    common::telescope_report(db)
}

fn statuses(v: &Value) -> Vec<String> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap().to_string())
        .collect()
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run iotscope")
}

#[test]
fn identical_captures_in_one_run_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = generate(dir.path(), "a.pcap", 20_000, 4);
    let b = dir.path().join("b.pcap");
    std::fs::copy(&a, &b).unwrap();
    let single = json(&run_ok(&mut analyze_cmd(&[&a], None)));
    let one_db = dir.path().join("one.db");
    run_ok(&mut analyze_cmd(&[&a], Some(&one_db)));

    // A copy and the same path again, in one run.
    let two_db = dir.path().join("two.db");
    let out = run_ok(&mut analyze_cmd(&[&a, &b, &a], Some(&two_db)));
    let run = json(&out);
    assert_eq!(statuses(&run), ["complete", "duplicate", "duplicate"]);
    let hash = &run["files"][0]["content_hash"];
    assert!(hash.is_string());
    for f in run["files"].as_array().unwrap() {
        assert_eq!(&f["content_hash"], hash);
    }
    assert_eq!(run["files"][1]["frames"], 0);
    assert_eq!(run["packets"], single["packets"], "the run's own report");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: skipped", b.display())),
        "{stderr}"
    );

    // The store holds one copy: exactly what the single file gives.
    let stored = report(&two_db);
    assert_eq!(stored["packets"], single["packets"]);
    assert_eq!(stored, report(&one_db));

    // Listed again later, every copy is a duplicate of the store.
    let again = json(&run_ok(&mut analyze_cmd(&[&b, &a], Some(&two_db))));
    assert_eq!(statuses(&again), ["duplicate", "duplicate"]);
    assert_eq!(report(&two_db), stored);
}

#[test]
fn standard_input_repeating_a_file_of_the_run_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = generate(dir.path(), "a.pcap", 5_000, 4);
    let db = dir.path().join("s.db");
    let mut cmd = analyze_cmd(&[&a, Path::new("-")], Some(&db));
    let out = cmd
        .stdin(std::fs::File::open(&a).unwrap())
        .output()
        .unwrap();
    // Standard input is hashed only while it is counted, so the run can
    // no longer leave it out: it fails and stores nothing.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("counted twice"), "{stderr}");
    assert_eq!(report(&db)["packets"], 0);
}

#[test]
fn concurrent_analyses_count_each_capture_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = generate(dir.path(), "a.pcap", 20_000, 4);
    let b = dir.path().join("b.pcap");
    std::fs::copy(&a, &b).unwrap();
    let o = generate(dir.path(), "o.pcap", 5_000, 5);
    let one_db = dir.path().join("one.db");
    run_ok(&mut analyze_cmd(&[&a], Some(&one_db)));
    let one = report(&one_db);
    let other = json(&run_ok(&mut analyze_cmd(&[&o], None)));

    for round in 0..6 {
        // Two processes, the same capture (same path or a copy), on a
        // store that does not exist yet.
        let db = dir.path().join(format!("c{round}.db"));
        let second: &Path = if round % 2 == 0 { &a } else { &b };
        let runs = [
            spawn(analyze_cmd(&[&a], Some(&db))),
            spawn(analyze_cmd(&[second], Some(&db))),
        ];
        let mut seen = Vec::new();
        for child in runs {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            seen.extend(statuses(&json(&out)));
        }
        seen.sort();
        assert_eq!(seen, ["complete", "duplicate"], "round {round}");
        assert_eq!(report(&db), one, "round {round}");
    }

    for round in 0..4 {
        // Three processes; one also brings another capture, which must be
        // kept even when its copy of a.pcap loses the race.
        let db = dir.path().join(format!("m{round}.db"));
        let runs = [
            spawn(analyze_cmd(&[&a], Some(&db))),
            spawn(analyze_cmd(&[&o, &b], Some(&db))),
            spawn(analyze_cmd(&[&b], Some(&db))),
        ];
        let mut complete = 0;
        for child in runs {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v = json(&out);
            for f in v["files"].as_array().unwrap() {
                if f["status"] == "complete" && f["content_hash"] != Value::Null {
                    complete += 1;
                }
            }
        }
        assert_eq!(complete, 2, "round {round}: a's content once, o once");
        let stored = report(&db);
        let sum = one["packets"].as_u64().unwrap() + other["packets"].as_u64().unwrap();
        assert_eq!(stored["packets"].as_u64().unwrap(), sum, "round {round}");
        for (class, c) in one["classes"].as_object().unwrap() {
            assert_eq!(
                stored["classes"][class]["packets"].as_u64().unwrap(),
                c["packets"].as_u64().unwrap()
                    + other["classes"][class]["packets"].as_u64().unwrap(),
                "round {round}: {class}"
            );
        }
    }
}
