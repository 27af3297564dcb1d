//! The live sensor on the wire: generated darknet captures, with known
//! truth, are replayed by tcpreplay from one network namespace into a veth
//! whose other end, in a second namespace, the sensor captures on (both
//! namespaces are this test's own, with no route out). What the sensor
//! stores must be what `telescope analyze` counts for the same files;
//! frames the kernel had to drop must be reported, and with them every
//! frame sent is accounted for. Needs root, ip and tcpreplay, and a build
//! with `--features live-capture`; skipped (and failed under
//! IOTSCOPE_REQUIRE_TOOLS) without them.
#![cfg(feature = "live-capture")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
#[cfg(feature = "postgres")]
use common::OwnPostgres;
use common::{effective_uid, have, skip, ScanNet};

const BIN: &str = env!("CARGO_BIN_EXE_iotscope");
const DARKNETS: [&str; 4] = ["--darknet", "198.18.0.0/16", "--darknet", "2001:db8:1::/48"];

fn ready() -> bool {
    for tool in ["ip", "tcpreplay"] {
        if !have(tool) {
            skip(&format!("{tool} is not installed"));
            return false;
        }
    }
    if effective_uid() != 0 {
        skip("not root: network namespaces and capture need it");
        return false;
    }
    true
}

/// A scratch directory and the two namespaces, when this machine can run
/// the namespace tests (else the test is skipped).
fn trial() -> Option<(tempfile::TempDir, ScanNet)> {
    ready().then(|| (tempfile::tempdir().unwrap(), ScanNet::up()))
}

fn generate(dir: &Path, name: &str, packets: u64, seed: u64) -> PathBuf {
    let out = dir.join(name);
    let st = Command::new(BIN)
        .args(["lab", "darknet", "--out"])
        .arg(&out)
        .args([
            "--packets",
            &packets.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// A sensor on the target's end of the veth, once it has said it captures.
/// It stops by itself after 60 s at the latest.
fn start_sensor(
    ns: &ScanNet,
    db: &Path,
    extra: &[&str],
) -> (Child, std::thread::JoinHandle<String>) {
    start_sensor_with(ns, db, "1m", extra)
}

/// [`start_sensor`] with buckets of `bucket`.
fn start_sensor_with(
    ns: &ScanNet,
    db: &Path,
    bucket: &str,
    extra: &[&str],
) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.target,
            BIN,
            "sensor",
            "--interface",
            "tv0",
        ])
        .args(DARKNETS)
        .args([
            "--bucket",
            bucket,
            "--grace",
            "1s",
            "--duration",
            "60s",
            "--format",
            "json",
            "--db",
        ])
        .arg(db)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, rest) = watch(&mut child);
    assert!(
        first.contains("sensor on tv0"),
        "sensor did not start: {first}"
    );
    (child, rest)
}

/// The sensor's first line on standard error (it captures once it is
/// said), and a thread gathering the whole of it.
fn watch(child: &mut Child) -> (String, std::thread::JoinHandle<String>) {
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let all = first.clone();
    let rest = std::thread::spawn(move || {
        let mut all = all;
        let _ = std::io::Read::read_to_string(&mut err, &mut all);
        all
    });
    (first, rest)
}

fn replay(ns: &ScanNet, pcap: &Path, extra: &[&str]) {
    let st = Command::new("timeout")
        .args([
            "60",
            "ip",
            "netns",
            "exec",
            &ns.scanner,
            "tcpreplay",
            "-q",
            "-i",
            "sv0",
        ])
        .args(extra)
        .arg(pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "tcpreplay");
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// SIGTERM, then the closing JSON.
fn stop(mut child: Child, log: std::thread::JoinHandle<String>) -> (Value, String) {
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "-TERM");
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let st = child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(st.success(), "sensor failed: {log}");
    (
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
        log,
    )
}

fn json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn analyze(files: &[&Path]) -> Value {
    json(
        Command::new(BIN)
            .args([
                "telescope",
                "analyze",
                "--format",
                "json",
                "--top",
                "100000",
            ])
            .args(["--bucket", "1m"])
            .args(DARKNETS)
            .args(files),
    )
}

fn report(db: &Path) -> Value {
    common::telescope_report(db)
}

/// The figures that do not depend on when the frames were captured (the
/// replay stamps them anew) must be equal; `outside` is not: the kernel
/// filter passes only darknet frames.
fn assert_same_counts(stored: &Value, analysed: &Value) {
    for k in [
        "packets",
        "bytes",
        "sources",
        "malformed",
        "classes",
        "fingerprints",
    ] {
        assert_eq!(stored[k], analysed[k], "{k}");
    }
    let ports = |v: &Value| {
        let mut p: Vec<(String, u64, u64, u64)> = v["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["proto"].as_str().unwrap().to_string(),
                    p["port"].as_u64().unwrap(),
                    p["packets"].as_u64().unwrap(),
                    p["sources"].as_u64().unwrap(),
                )
            })
            .collect();
        p.sort();
        p
    };
    assert_eq!(ports(stored), ports(analysed));
    let infected = |v: &Value| {
        let mut i: Vec<(String, u64)> = v["infected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["ip"].as_str().unwrap().to_string(),
                    h["packets"].as_u64().unwrap(),
                )
            })
            .collect();
        i.sort();
        i
    };
    assert_eq!(infected(stored), infected(analysed));
}

#[test]
fn replayed_frames_are_stored_as_the_file_analysis_counts_them_across_a_restart() {
    let Some((dir, ns)) = trial() else {
        return;
    };
    let first = generate(dir.path(), "a.pcap", 15_000, 41);
    let second = generate(dir.path(), "b.pcap", 10_000, 42);
    let db = dir.path().join("live.db");

    let archive = dir.path().join("archive");
    let archive_flag = ["--archive", archive.to_str().unwrap()];

    // One sensor run per capture: the second run adds to the same store.
    // SIGHUP in the first closes its archive file; the frames after it go
    // to a new one.
    let (child, log) = start_sensor(&ns, &db, &archive_flag);
    replay(&ns, &first, &["--pps", "10000", "--limit", "5000"]);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(500));
    let rest = dir.path().join("a-rest.pcap");
    split(&first, |i| i >= 5000, &rest);
    replay(&ns, &rest, &["--pps", "10000"]);
    let (one, log) = stop(child, log);
    assert_eq!(log.matches("archived").count(), 2, "SIGHUP rotates: {log}");
    let (child, log) = start_sensor(&ns, &db, &archive_flag);
    replay(&ns, &second, &["--pps", "10000"]);
    let (two, log) = stop(child, log);
    assert!(log.contains("at the stop"), "SIGTERM commits: {log}");

    let truth = analyze(&[&first, &second]);
    let darknet_frames = truth["packets"].as_u64().unwrap();
    assert_eq!(one["dropped"], 0, "a moderate rate loses nothing");
    assert_eq!(two["dropped"], 0);
    assert_eq!(
        one["frames"].as_u64().unwrap() + two["frames"].as_u64().unwrap(),
        darknet_frames
    );
    let stored = report(&db);
    assert_same_counts(&stored, &truth);
    let loss = &stored["capture_loss"];
    assert_eq!(loss["received"].as_u64().unwrap(), darknet_frames);
    assert_eq!(loss["dropped"], 0);
    assert_eq!(loss["lossy_buckets"], serde_json::json!([]));

    // The archive holds every frame as captured: analysed again it gives
    // what the sensor stored, its series included (same capture times).
    let mut files: Vec<PathBuf> = std::fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let again = analyze(&paths);
    assert_same_counts(&stored, &again);
    let series = |v: &Value| {
        v["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["start"].clone(),
                    b["packets"].clone(),
                    b["sources"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(series(&stored), series(&again));
    // The store knows the archive files: they are not counted twice.
    let dup = json(
        Command::new(BIN)
            .args([
                "telescope",
                "analyze",
                "--format",
                "json",
                "--bucket",
                "1m",
                "--db",
            ])
            .arg(&db)
            .args(DARKNETS)
            .arg(&files[0]),
    );
    assert_eq!(dup["files"][0]["status"], "duplicate");
}

/// Writes the frames of `pcap` whose index `keep` accepts to `out` (same
/// header).
fn split(pcap: &Path, keep: impl Fn(usize) -> bool, out: &Path) {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(pcap).unwrap()).unwrap();
    let mut w =
        pcap_file::pcap::PcapWriter::with_header(std::fs::File::create(out).unwrap(), r.header())
            .unwrap();
    let mut i = 0;
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        if keep(i) {
            w.write_packet(&p).unwrap();
        }
        i += 1;
    }
}

#[test]
fn frames_the_kernel_dropped_are_reported_and_every_frame_is_accounted_for() {
    let Some((dir, ns)) = trial() else {
        return;
    };
    let pcap = generate(dir.path(), "c.pcap", 30_000, 43);
    let db = dir.path().join("live.db");
    // The smallest buffer, and the sensor frozen while the frames arrive:
    // the kernel must drop most of them.
    let (child, log) = start_sensor(&ns, &db, &["--buffer-mib", "1"]);
    signal(&child, "-STOP");
    replay(&ns, &pcap, &["--pps", "20000"]);
    signal(&child, "-CONT");
    let (closing, log) = stop(child, log);

    let truth = analyze(&[&pcap]);
    let sent = truth["packets"].as_u64().unwrap();
    let frames = closing["frames"].as_u64().unwrap();
    let dropped = closing["dropped"].as_u64().unwrap();
    assert!(
        dropped > 0,
        "a frozen sensor with a 1 MiB buffer drops: {closing} {log}"
    );
    assert_eq!(
        frames + dropped,
        sent,
        "counted + dropped = sent: {closing}"
    );
    assert_eq!(closing["received"].as_u64().unwrap(), sent);

    let stored = report(&db);
    assert_eq!(stored["packets"].as_u64().unwrap(), frames);
    let loss = &stored["capture_loss"];
    assert_eq!(loss["dropped"].as_u64().unwrap(), dropped);
    assert!(!loss["lossy_buckets"].as_array().unwrap().is_empty());
    // The buckets with drops are marked in the series.
    let marked: u64 = stored["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["dropped"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(marked, dropped);
}

#[test]
fn without_the_darknet_or_the_interface_the_sensor_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["sensor", "--interface", "lo", "--db"])
        .arg(dir.path().join("x.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--darknet"));
    let out = Command::new(BIN)
        .args([
            "sensor",
            "--interface",
            "no-such-if0",
            "--darknet",
            "198.18.0.0/15",
            "--db",
        ])
        .arg(dir.path().join("x.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-if0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `setpriv` as user 65534 with the given capabilities, then the sensor on
/// the loopback interface for a second (it only listens: nothing is sent).
fn sensor_as_nobody(caps: &str, db: &Path) -> std::process::Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    c.arg(format!("--inh-caps={caps}"));
    if caps != "-all" {
        c.arg(format!("--ambient-caps={caps}"));
    }
    c.args([
        "--",
        BIN,
        "sensor",
        "--interface",
        "lo",
        "--darknet",
        "198.18.0.0/15",
    ])
    .args(["--duration", "1s", "--format", "json", "--db"])
    .arg(db)
    .output()
    .unwrap()
}

#[test]
fn an_unprivileged_user_needs_cap_net_raw_and_runs_with_it() {
    if effective_uid() != 0 || !have("setpriv") {
        return skip("setpriv as root is needed to run as another user");
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let db = dir.path().join("s.db");
    let out = sensor_as_nobody("-all", &db);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("setcap"),
        "{err}"
    );
    // With CAP_NET_RAW alone (as the systemd unit in docs/sensor.md grants
    // it) the same user captures and stops by itself.
    let out = sensor_as_nobody("+net_raw", &db);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let closing: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(closing["interface"], "lo");
}

#[test]
fn sighup_reads_the_darknet_again_from_the_configuration() {
    let Some((dir, ns)) = trial() else {
        return;
    };
    let pcap = generate(dir.path(), "h.pcap", 6_000, 44);
    let rest = dir.path().join("h-rest.pcap");
    split(&pcap, |i| i >= 3000, &rest);
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, "[telescope]\ndarknet = [\"198.18.0.0/16\"]\n").unwrap();
    let db = dir.path().join("h.db");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.target, BIN, "--config"])
        .arg(&cfg)
        .args([
            "sensor",
            "--interface",
            "tv0",
            "--bucket",
            "1m",
            "--grace",
            "1s",
        ])
        .args(["--duration", "60s", "--format", "json", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, log) = watch(&mut child);
    assert!(first.contains("dst net 198.18.0.0/16"), "{first}");
    replay(&ns, &pcap, &["--pps", "10000", "--limit", "3000"]);
    std::thread::sleep(Duration::from_millis(500));
    // A darknet that holds none of the rest's destinations; a new status
    // interval; a grace period the flags gave, which stays.
    std::fs::write(
        &cfg,
        "[telescope]\ndarknet = [\"10.99.0.0/16\"]\n[sensor]\nstatus = \"30s\"\ngrace = \"3s\"\n",
    )
    .unwrap();
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(500));
    replay(&ns, &rest, &["--pps", "10000"]);
    let (closing, log) = stop(child, log);
    assert!(log.contains("darknet now 10.99.0.0/16"), "{log}");
    assert!(
        log.contains("grace 1s (from the next bucket), status every 30s"),
        "{log}"
    );
    // Only the first part's IPv4 darknet frames: the rest were not passed
    // by the new kernel filter.
    let head = dir.path().join("h-head.pcap");
    split(&pcap, |i| i < 3000, &head);
    let want = json(
        Command::new(BIN)
            .args([
                "telescope",
                "analyze",
                "--format",
                "json",
                "--darknet",
                "198.18.0.0/16",
            ])
            .arg(&head),
    )["packets"]
        .as_u64()
        .unwrap();
    assert_eq!(closing["frames"].as_u64().unwrap(), want, "{closing} {log}");
}

#[test]
fn a_fan_out_group_of_two_sockets_stores_what_one_counts() {
    let Some((dir, ns)) = trial() else {
        return;
    };
    let pcap = generate(dir.path(), "f.pcap", 12_000, 45);
    let db = dir.path().join("f.db");
    let (child, log) = start_sensor(&ns, &db, &["--fanout", "2"]);
    replay(&ns, &pcap, &["--pps", "10000"]);
    let (closing, log) = stop(child, log);
    let truth = analyze(&[&pcap]);
    assert_eq!(closing["dropped"], 0, "{closing} {log}");
    assert_eq!(closing["frames"], truth["packets"], "{closing} {log}");
    // Both sockets committed (the kernel spread the flows over them).
    assert!(closing["commits"].as_u64().unwrap() >= 2, "{closing}");
    assert_same_counts(&report(&db), &truth);
}

/// Issue 20: the detectors judge each bucket the live sensor closes. A
/// steady background over seven two-second buckets, then a burst of
/// Mirai-variant hosts on 37215: the episode is in the store, from the
/// sensor's own passes (no `detect run`).
#[test]
fn the_detectors_judge_buckets_as_the_sensor_closes_them() {
    let Some((dir, ns)) = trial() else {
        return;
    };
    let background = generate(dir.path(), "bg.pcap", 3_000, 61);
    let burst = dir.path().join("burst.pcap");
    let st = Command::new(BIN)
        .args([
            "lab",
            "darknet",
            "--packets",
            "50",
            "--seed",
            "62",
            "--duration",
            "1h",
        ])
        .args(["--campaigns", "new_port@0", "--out"])
        .arg(&burst)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let cfg = dir.path().join("detect.toml");
    std::fs::write(
        &cfg,
        "[detect]\nbaseline = \"30s\"\nperiod = \"0s\"\nlookback = \"10s\"\ncooldown = \"5s\"\nmin_history = 5\n",
    )
    .unwrap();
    let db = dir.path().join("d.db");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.target, BIN, "--config"])
        .arg(&cfg)
        .args([
            "sensor",
            "--interface",
            "tv0",
            "--bucket",
            "2s",
            "--grace",
            "1s",
        ])
        .args(DARKNETS)
        .args(["--duration", "60s", "--format", "json", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, log) = watch(&mut child);
    assert!(
        first.contains("sensor on tv0"),
        "sensor did not start: {first}"
    );
    // About 15 s (seven or eight buckets) of background at 200 frames a
    // second, then the burst in well under a second.
    replay(&ns, &background, &["--pps", "200"]);
    replay(&ns, &burst, &["--pps", "5000"]);
    // Its bucket closes after it (grace 1 s); the pass runs on its thread.
    std::thread::sleep(Duration::from_secs(5));
    let (_, log) = stop(child, log);
    assert!(log.contains("detect from bucket"), "{log}");
    let out = Command::new(BIN)
        .args(["detect", "list", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eps: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        eps.iter().any(|e| e["ports"]
            .as_str()
            .unwrap()
            .split(',')
            .any(|p| p == "37215")),
        "no episode on 37215: {eps:#?}\n{log}"
    );
}

/// A sensor writing to PostgreSQL keeps the commits the database refused
/// while it was down, and stores them, in order and once each, when it is
/// back: what is stored is what the file analysis counts.
#[cfg(feature = "postgres")]
#[test]
fn a_sensor_writing_to_postgresql_loses_nothing_across_a_database_restart() {
    let Some((dir, ns)) = trial() else {
        return;
    };
    let Some((pg, url)) = OwnPostgres::start() else {
        return;
    };
    let first = generate(dir.path(), "a.pcap", 6_000, 51);
    let second = generate(dir.path(), "b.pcap", 6_000, 52);
    let db = PathBuf::from(&url);
    let (child, log) = start_sensor_with(&ns, &db, "2s", &[]);
    replay(&ns, &first, &["--pps", "10000"]);
    // A bucket closes and is stored; then the database goes away.
    std::thread::sleep(Duration::from_millis(3500));
    pg.run("stop");
    replay(&ns, &second, &["--pps", "10000"]);
    std::thread::sleep(Duration::from_millis(3500));
    pg.run("start");
    // Buckets close again: the waiting commits go in.
    std::thread::sleep(Duration::from_millis(5000));
    let (out, log) = stop(child, log);
    assert!(
        log.contains("kept"),
        "no commit was refused while the database was down: {log}"
    );
    assert_eq!(out["dropped"], 0);
    let truth = json(
        Command::new(BIN)
            .args([
                "telescope",
                "analyze",
                "--format",
                "json",
                "--top",
                "100000",
            ])
            .args(DARKNETS)
            .args([&first, &second]),
    );
    assert_eq!(out["frames"], truth["packets"]);
    let stored = json(Command::new(BIN).args([
        "telescope",
        "report",
        "--format",
        "json",
        "--top",
        "100000",
        "--db",
        &url,
    ]));
    assert_same_counts(&stored, &truth);
}

/// With a spool, a sensor stopped while its database is down loses
/// nothing: the commits wait in the local file, and `store forward` puts
/// them in, once each, when the database is back (a second forward finds
/// nothing to do): the store then holds what the file analysis counts.
#[cfg(feature = "postgres")]
#[test]
fn a_spooled_sensor_stopped_during_an_outage_loses_nothing() {
    let Some((dir, ns)) = trial() else {
        return;
    };
    let Some((pg, url)) = OwnPostgres::start() else {
        return;
    };
    let first = generate(dir.path(), "a.pcap", 6_000, 61);
    let second = generate(dir.path(), "b.pcap", 6_000, 62);
    let spool = dir.path().join("sensor.spool");
    let db = PathBuf::from(&url);
    let (child, log) = start_sensor_with(
        &ns,
        &db,
        "2s",
        &["--spool", spool.to_str().unwrap(), "--spool-max", "64M"],
    );
    replay(&ns, &first, &["--pps", "10000"]);
    std::thread::sleep(Duration::from_millis(3500));
    pg.run("stop");
    replay(&ns, &second, &["--pps", "10000"]);
    std::thread::sleep(Duration::from_millis(3500));
    // Stopped with the database still down: without a spool, these
    // commits' frames would be lost (and said so).
    let (out, log) = stop(child, log);
    assert!(log.contains("waits in the spool"), "{log}");
    assert!(out["spool_waiting"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(out["dropped"], 0);
    pg.run("start");
    let forward = |expect_some: bool| {
        let o = Command::new(BIN)
            .args([
                "store", "forward", "--format", "json", "--db", &url, "--spool",
            ])
            .arg(&spool)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["waiting"], 0, "{v}");
        assert_eq!(v["forwarded"].as_u64().unwrap() > 0, expect_some, "{v}");
    };
    forward(true);
    forward(false);
    let truth = json(
        Command::new(BIN)
            .args([
                "telescope",
                "analyze",
                "--format",
                "json",
                "--top",
                "100000",
            ])
            .args(DARKNETS)
            .args([&first, &second]),
    );
    assert_eq!(out["frames"], truth["packets"]);
    let stored = json(Command::new(BIN).args([
        "telescope",
        "report",
        "--format",
        "json",
        "--top",
        "100000",
        "--db",
        &url,
    ]));
    assert_same_counts(&stored, &truth);
}
