//! Detection end to end (issue 20): a generated capture with scripted
//! campaigns is analysed into a store (the detectors run as it is stored),
//! the episodes are compared with the truth's onsets, a replay adds nothing,
//! and new episodes are delivered to a webhook on loopback, retried when it
//! fails.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

/// Five days of background with one campaign of each kind; the store, and
/// the truth.
fn store_with_campaigns(dir: &Path) -> (PathBuf, serde_json::Value) {
    let pcap = dir.join("c.pcap");
    let out = bin()
        .args([
            "lab",
            "darknet",
            "--packets",
            "150000",
            "--duration",
            "5d",
            "--seed",
            "11",
        ])
        .args([
            "--campaigns",
            "mirai_outbreak@2d6h,new_port@3d2h,research_sweep@3d20h,backscatter@4d10h",
        ])
        .arg("--out")
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("c.pcap.truth.json")).unwrap()).unwrap();
    let db = dir.join("s.db");
    let out = bin()
        .args([
            "telescope",
            "analyze",
            "--darknet",
            "198.18.0.0/16",
            "--format",
            "json",
        ])
        .arg(&pcap)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("iotscope: detect: "), "{err}");
    // Standard output is the report alone.
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("stdout is the JSON report");
    (db, truth)
}

/// `iotscope --config CFG detect run --db DB`.
fn detect_run(cfg: &Path, db: &Path) -> std::process::Output {
    bin()
        .arg("--config")
        .arg(cfg)
        .args(["detect", "run", "--db"])
        .arg(db)
        .output()
        .unwrap()
}

fn episodes(db: &Path) -> Vec<serde_json::Value> {
    let out = bin()
        .args([
            "detect", "list", "--format", "json", "--limit", "1000", "--db",
        ])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn onset_bucket(truth: &serde_json::Value, kind: &str) -> i64 {
    let c = truth["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap();
    c["onset_s"].as_i64().unwrap() / 3600 * 3600
}

/// The episode covering a bucket at most two after `onset` that `pick` takes.
fn found(
    eps: &[serde_json::Value],
    onset: i64,
    pick: impl Fn(&serde_json::Value) -> bool,
) -> Option<&serde_json::Value> {
    eps.iter().find(|e| {
        let first = e["first_bucket_ns"].as_i64().unwrap() / 1_000_000_000;
        let last = e["last_bucket_ns"].as_i64().unwrap() / 1_000_000_000;
        pick(e) && last >= onset && first <= onset + 2 * 3600
    })
}

#[test]
fn scripted_campaigns_are_detected_within_two_buckets_and_research_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (db, truth) = store_with_campaigns(dir.path());
    let eps = episodes(&db);
    let ports = |e: &serde_json::Value| -> Vec<u16> {
        e["ports"]
            .as_str()
            .unwrap()
            .split(',')
            .filter_map(|p| p.parse().ok())
            .collect()
    };

    let mirai = found(&eps, onset_bucket(&truth, "mirai_outbreak"), |e| {
        ports(e).contains(&23) || ports(e).contains(&2323)
    })
    .unwrap_or_else(|| panic!("no Mirai outbreak episode: {eps:#?}"));
    assert_eq!(mirai["kind"], "infection_campaign");
    assert!(mirai["latest"]["classes"]["mirai_like"].as_f64().unwrap() > 0.5);
    let latest = &mirai["latest"];
    for key in [
        "window",
        "detectors",
        "sources",
        "packets",
        "new_sources",
        "examples",
        "cooldown_s",
    ] {
        assert!(!latest[key].is_null(), "{key} missing: {latest:#}");
    }
    let hit = &latest["detectors"][0];
    assert!(hit["parameters"]["z"].is_number() && hit["baseline"]["expected"].is_number());

    let new_port = found(&eps, onset_bucket(&truth, "new_port"), |e| {
        ports(e).contains(&37215)
    })
    .unwrap_or_else(|| panic!("no new-port episode: {eps:#?}"));
    assert_eq!(
        new_port["severity"], "critical",
        "an infection on a port new to the darknet"
    );

    found(&eps, onset_bucket(&truth, "backscatter"), |e| {
        e["key"] == "backscatter"
    })
    .unwrap_or_else(|| panic!("no backscatter episode: {eps:#?}"));

    // The research sweep (Censys' published prefix) raises nothing, and its
    // hosts are nobody's example.
    for e in &eps {
        for x in e["latest"]["examples"].as_array().unwrap() {
            assert!(
                !x["ip"].as_str().unwrap().starts_with("162.142.125."),
                "{e:#}"
            );
        }
    }
    let research_hours = onset_bucket(&truth, "research_sweep");
    assert!(
        !eps.iter().any(|e| {
            let first = e["first_bucket_ns"].as_i64().unwrap() / 1_000_000_000;
            e["kind"] == "infection_campaign"
                && (research_hours..research_hours + 12 * 3600).contains(&first)
                && !ports(e).contains(&37215)
                && !ports(e).contains(&23)
        }),
        "{eps:#?}"
    );

    // A replay over the whole store raises the same episodes, no more.
    let out = bin()
        .args(["detect", "run", "--no-deliver", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pass: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pass["created"], 0, "{pass:#}");
    assert!(
        pass["classes"]["research_scanner"].as_u64().unwrap() >= 16,
        "{pass:#}"
    );
    assert_eq!(episodes(&db).len(), eps.len());
}

/// A receiver on 127.0.0.1 answering connections with `script`'s statuses
/// in turn (then 200), keeping the bodies.
fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            let code = script.next().unwrap_or(200);
            if code == 200 {
                let text = String::from_utf8_lossy(&req).to_string();
                keep.lock()
                    .unwrap()
                    .push(text.split_once("\r\n\r\n").unwrap().1.to_string());
            }
            let _ =
                s.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    (url, seen)
}

#[test]
fn new_episodes_go_to_the_webhook_once_and_failures_wait_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = store_with_campaigns(dir.path());
    let n = episodes(&db).len();
    assert!(n >= 3);

    // A webhook nobody listens on: the run says so (exit 1) and keeps them.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let cfg = dir.path().join("dead.toml");
    std::fs::write(&cfg, format!("[detect]\nwebhook = \"{dead_url}\"\n")).unwrap();
    let out = detect_run(&cfg, &db);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("kept for the next run"));
    assert!(episodes(&db).iter().all(|e| e["notified_at"].is_null()));

    // A receiver that fails once (503) then takes them: every episode
    // arrives once, as JSON, and is marked delivered.
    let (url, seen) = receiver(vec![503]);
    let cfg = dir.path().join("hook.toml");
    std::fs::write(&cfg, format!("[detect]\nwebhook = \"{url}\"\n")).unwrap();
    let run = || detect_run(&cfg, &db);
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), n, "{bodies:#?}");
    for b in &bodies {
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        assert!(
            v["key"].is_string() && v["latest"]["detectors"].is_array(),
            "{v:#}"
        );
    }
    assert!(episodes(&db).iter().all(|e| e["notified_at"].is_string()));
    // Nothing new: nothing sent again.
    let out = run();
    assert!(out.status.success());
    assert_eq!(seen.lock().unwrap().len(), n);
}

#[test]
fn bad_detection_settings_and_lists_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = store_with_campaigns(dir.path());
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[detect]\ncooldown = \"soon\"\n").unwrap();
    let out = detect_run(&cfg, &db);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cooldown"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every bad value is a usage error before anything runs or is sent:
    // a count of zero (every port would be a new port), NaN, a webhook that
    // is not http(s), a baseline shorter than the history it needs.
    for bad in [
        "new_port_min = 0",
        "min_packets = nan",
        "backscatter_min_victims = -1",
        "webhook = \"ftp://127.0.0.1/x\"",
        "webhook = \"http://127.0.0.1:0/x\"",
        "baseline = \"2h\"",
        "period = \"30m\"",
        "mail_to = [\"not a mailbox\"]",
    ] {
        std::fs::write(&cfg, format!("[detect]\n{bad}\n")).unwrap();
        let out = detect_run(&cfg, &db);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = bin()
        .args([
            "detect",
            "list",
            "--since",
            "2016-10-05T00:00:00Z",
            "--until",
            "2016-10-04T00:00:00Z",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let list = dir.path().join("r.toml");
    std::fs::write(
        &list,
        "[[scanner]]\nname = \"x\"\nsource = \"y\"\nprefixes = [\"10.0.0.0/40\"]\n",
    )
    .unwrap();
    let out = bin()
        .args(["detect", "run", "--db"])
        .arg(&db)
        .arg("--research")
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("r.toml") && err.contains("10.0.0.0/40"),
        "{err}"
    );
}

#[test]
fn new_episodes_are_mailed_with_their_json_attached() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = store_with_campaigns(dir.path());
    let n = episodes(&db).len();
    let (portfile, out) = (dir.path().join("port"), dir.path().join("relay.json"));
    // The alerts tests' relay (Python's smtplib-free server), plain SMTP on
    // loopback, one connection per message.
    let mut relay = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/common/smtp_relay.py"
        ))
        .arg(&portfile)
        .arg(&out)
        .args([
            "--no-starttls",
            "--messages",
            &n.to_string(),
            "--seconds",
            "60",
        ])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let port: u16 = loop {
        if let Ok(p) = std::fs::read_to_string(&portfile) {
            if let Ok(p) = p.trim().parse() {
                break p;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relay did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let cfg = dir.path().join("mail.toml");
    std::fs::write(
        &cfg,
        format!(
            "[smtp]\nserver = \"127.0.0.1:{port}\"\nfrom = \"darknet@example.net\"\n\n\
             [detect]\nmail_to = [\"cert@example.org\"]\n"
        ),
    )
    .unwrap();
    let run = detect_run(&cfg, &db);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while relay.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the relay did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sessions: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(sessions.len(), n, "{sessions:#?}");
    for s in &sessions {
        let data = s["data"].as_str().unwrap();
        assert!(data.contains("Subject: [iotscope] "), "{data}");
        assert!(data.contains("Content-Type: application/json"), "{data}");
        assert!(data.contains("detection.json"), "{data}");
    }
    assert!(episodes(&db).iter().all(|e| e["notified_at"].is_string()));
}
