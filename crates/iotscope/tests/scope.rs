//! Issue 13 regressions, on loopback: one address model for every decision
//! to send a packet. Every spelling of an opted-out address gets nothing
//! (survey, `check`, `alerts recheck`); the unspecified address is never a
//! target; a survey with checks that is stopped and resumed, with an
//! opt-out arriving in between, finds exactly what one run finds and sends
//! no pair twice.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::RunningLab;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

/// A listener on `addr` that counts the connections it accepts, for as
/// long as the returned guard lives (bounded: it stops by itself after 60 s).
struct Counter {
    hits: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    port: u16,
}

impl Counter {
    fn on(ip: &str) -> Counter {
        let l = TcpListener::bind((ip, 0)).unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                match l.accept() {
                    Ok(_) => {
                        h.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Counter { hits, stop, port }
    }

    fn hits(&self) -> usize {
        // Let a connect in flight land.
        std::thread::sleep(Duration::from_millis(100));
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The opt-out bypass of issue 13: an exclusion in one family did not hold
/// for a target spelt in the other. Every pairing of spellings now gets
/// the same answer: not one connection.
#[test]
fn every_spelling_of_an_opted_out_address_gets_no_connection() {
    let host = Counter::on("127.78.40.7");
    let dir = tempfile::tempdir().unwrap();
    let targets = [
        "127.78.40.7",
        "::ffff:127.78.40.7",
        "::127.78.40.7",
        "::ffff:7f4e:2807",
        "::ffff:127.78.40.0/120",
        "127.78.40.0/24",
    ];
    let exclusions = [
        "127.78.40.0/24 # ticket 42",
        "::ffff:127.78.40.0/120",
        "127.78.40.7",
        "::ffff:127.78.40.7",
        "64:ff9b::127.78.40.0/120",
        "::127.78.40.7/128",
    ];
    for (i, ex) in exclusions.iter().enumerate() {
        let file = dir.path().join(format!("optout{i}.conf"));
        std::fs::write(&file, format!("{ex}\n")).unwrap();
        for t in targets {
            let o = bin()
                .args(["survey", "--targets", t, "--ports"])
                .arg(host.port.to_string())
                .args(["--rate", "0", "--no-grab", "--exclude"])
                .arg(&file)
                .output()
                .unwrap();
            // Nothing left but an excluded address: refused as an empty plan
            // (a /24 target keeps the rest of its range, all closed).
            let rows = String::from_utf8_lossy(&o.stdout).into_owned();
            assert!(
                !rows.contains("127.78.40.7\""),
                "{t} with {ex}: {rows} {}",
                stderr(&o)
            );
            assert_eq!(host.hits(), 0, "{t} excluded by {ex:?} got a connection");
        }
    }
    // Without the exclusion the mapped spelling reaches the same host, as
    // an IPv4 address.
    let o = bin()
        .args(["survey", "--targets", "::ffff:127.78.40.7", "--ports"])
        .arg(host.port.to_string())
        .args(["--rate", "0", "--no-grab"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let row: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(row["ip"], "127.78.40.7");
    assert_eq!(host.hits(), 1);
}

/// `0.0.0.0`, `::` and their mapped forms reach the scanning host's own
/// listeners: never a target, in the survey or in `check`.
#[test]
fn the_unspecified_address_is_never_probed() {
    let own = Counter::on("0.0.0.0");
    for t in [
        "0.0.0.0",
        "::",
        "::ffff:0.0.0.0",
        "0.0.0.0/30",
        "::ffff:0.0.0.0/126",
    ] {
        let o = bin()
            .args(["survey", "--targets", t, "--ports"])
            .arg(own.port.to_string())
            .args(["--rate", "0", "--no-grab"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{t}: {}", stderr(&o));
        assert!(stderr(&o).contains("never probed"), "{t}: {}", stderr(&o));
        let o = bin()
            .args(["check", t, "--i-own-this", "--lang", "en", "--ports"])
            .arg(own.port.to_string())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "check {t}: {}", stderr(&o));
    }
    assert_eq!(own.hits(), 0);
    // `check` honours the configured opt-outs in any spelling.
    let dir = tempfile::tempdir().unwrap();
    let host = Counter::on("127.78.40.9");
    std::fs::write(dir.path().join("opt.conf"), "::ffff:127.78.40.0/120\n").unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        format!("[scope]\nexclude = [{:?}]\n", dir.path().join("opt.conf")),
    )
    .unwrap();
    let o = bin()
        .arg("--config")
        .arg(dir.path().join("c.toml"))
        .args(["check", "127.78.40.9", "--lang", "en", "--ports"])
        .arg(host.port.to_string())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("excluded"), "{}", stderr(&o));
    assert_eq!(host.hits(), 0);
}

/// An owner opts out after the survey: `alerts recheck` with the opt-out
/// (flag or config) logs in nowhere, marks nothing fixed, says it skipped.
#[test]
fn recheck_honours_opt_outs_and_skips_instead_of_fixing() {
    let lab = RunningLab::start("127.78.42.0/24", 12, 4);
    let dir = lab.dir.path().to_path_buf();
    let db = dir.join("r.db");
    common::survey_lab_into("127.78.42.0/24", "23,80,81,8080,8081", &dir, &db);
    let o = bin()
        .args(["alerts", "build", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let list = || -> Vec<Value> {
        let o = bin()
            .args(["alerts", "list", "--format", "json", "--db"])
            .arg(&db)
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let before = list();
    assert!(!before.is_empty());
    // Half the lab opts out, written in the mapped spelling.
    let opt = dir.join("opt.conf");
    std::fs::write(&opt, "::ffff:127.78.42.0/121 # ticket 7\n").unwrap();
    let excluded = |ip: &str| ip.rsplit('.').next().unwrap().parse::<u8>().unwrap() < 128;
    let events = lab.audit_events().len();
    let o = bin()
        .args(["alerts", "recheck", "--timeout", "2s", "--db"])
        .arg(&db)
        .arg("--exclude")
        .arg(&opt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let n_ex = before
        .iter()
        .filter(|a| excluded(a["ip"].as_str().unwrap()))
        .count();
    assert!(n_ex > 0, "the lab has alerts below .128");
    assert!(
        stderr(&o).contains(&format!("{n_ex} skipped (excluded)")),
        "{}",
        stderr(&o)
    );
    // No excluded device saw anything.
    let touched: BTreeSet<String> = lab.audit_events()[events..]
        .iter()
        .filter_map(|e| e["device"].as_str().map(String::from))
        .collect();
    assert!(
        touched.iter().all(|ip| !excluded(ip)),
        "excluded devices touched: {touched:?}"
    );
    for a in list() {
        if excluded(a["ip"].as_str().unwrap()) {
            let was = before
                .iter()
                .find(|b| {
                    b["ip"] == a["ip"] && b["problem"] == a["problem"] && b["port"] == a["port"]
                })
                .unwrap();
            assert_eq!(a["status"], was["status"], "skipped, not changed: {a}");
        }
    }
    // The same through the config's [scope], for the whole lab: nothing sent.
    std::fs::write(&opt, "127.78.42.0/24\n").unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, format!("[scope]\nexclude = [{opt:?}]\n")).unwrap();
    let events = lab.audit_events().len();
    let o = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["alerts", "recheck", "--timeout", "2s", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lab.audit_events().len(), events, "{}", stderr(&o));
}

fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sqlite_pairs(db: &Path, sql: &str) -> BTreeSet<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let out = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<BTreeSet<_>, _>>()
        .unwrap();
    out
}

const PORTS: &str = "23,80,502,1883,8080";

/// One survey with checks into `db`; with `stop_after`, SIGTERM then.
fn survey_checks(db: &Path, state: &Path, out: &Path, stop_after: Option<Duration>) -> String {
    let mut child = bin()
        .args(["survey", "--targets", "127.78.43.0/27", "--ports", PORTS])
        .args(["--checks", "all", "--rate", "40", "--timeout", "2s", "--db"])
        .arg(db)
        .arg("--resume")
        .arg(state)
        .arg("--output")
        .arg(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(t) = stop_after {
        std::thread::sleep(t);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let started = Instant::now();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(120), "{err}");
    err
}

/// The data-loss half of issue 13: a survey with checks stopped at several
/// points (during the sweep, and during the checks) and resumed ends with
/// the same services and the same findings as one uninterrupted run, and
/// its rows hold every pair once.
#[test]
fn a_stopped_survey_with_checks_resumes_to_the_same_findings() {
    let findings_sql = "SELECT ip || ':' || port || ' ' || kind FROM findings";
    let services_sql = "SELECT ip || ':' || port || ' ' || status FROM services";
    // The reference: one run against a fresh lab (devices keep lockout
    // state, so every run gets its own lab with the same seed).
    let (whole_f, whole_s, whole_rows) = {
        let lab = RunningLab::start("127.78.43.0/24", 30, 9);
        let d = lab.dir.path();
        let db = d.join("whole.db");
        survey_checks(&db, &d.join("st"), &d.join("rows"), None);
        let r = rows(&d.join("rows"));
        (
            sqlite_pairs(&db, findings_sql),
            sqlite_pairs(&db, services_sql),
            r.len(),
        )
    };
    assert!(!whole_f.is_empty());
    // 32 x 5 = 160 pairs at 40/s: the sweep takes 4 s, then the checks.
    for stop in [Duration::from_millis(1500), Duration::from_millis(4600)] {
        let lab = RunningLab::start("127.78.43.0/24", 30, 9);
        let d = lab.dir.path();
        let (db, state, out) = (d.join("r.db"), d.join("state.json"), d.join("rows"));
        let first = survey_checks(&db, &state, &out, Some(stop));
        assert!(
            state.exists(),
            "stopped at {stop:?}, a state is left: {first}"
        );
        let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert_eq!(saved["version"], 2);
        let again = survey_checks(&db, &state, &out, None);
        assert!(!state.exists(), "{again}");
        assert_eq!(
            rows(&out).len(),
            whole_rows,
            "every pair once (stop at {stop:?}): {first} {again}"
        );
        assert_eq!(sqlite_pairs(&db, services_sql), whole_s, "stop at {stop:?}");
        assert_eq!(
            sqlite_pairs(&db, findings_sql),
            whole_f,
            "stop at {stop:?}: {first}\n{again}"
        );
    }
}

/// An opt-out that arrives between the stop and the resume: the resumed run
/// rebuilds the first run's order from the recorded exclusions, skips the
/// newly excluded pairs, and says so. No address outside the exclusions is
/// missed and none is probed twice.
#[test]
fn an_opt_out_between_stop_and_resume_is_applied_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (opt, state, out) = (d.join("opt.conf"), d.join("st.json"), d.join("r.jsonl"));
    std::fs::write(&opt, "127.78.44.200/29\n").unwrap();
    let args = |rate: &str| {
        let mut c = bin();
        c.args(["survey", "--targets", "127.78.44.0/24", "--ports", "9"])
            .args(["--report-closed", "--no-grab", "--rate", rate, "--exclude"])
            .arg(&opt)
            .arg("--resume")
            .arg(&state)
            .arg("--output")
            .arg(&out);
        c
    };
    let mut child = args("60").stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    let before: BTreeSet<String> = rows(&out)
        .iter()
        .map(|r| r["ip"].as_str().unwrap().to_string())
        .collect();
    assert!(!before.is_empty() && before.len() < 200);
    // The opt-out arrives, in the other family's spelling.
    std::fs::write(&opt, "127.78.44.200/29\n::ffff:127.78.44.0/122\n").unwrap();
    let o = args("0").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("64 IPv4 addresses newly excluded"),
        "{}",
        stderr(&o)
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows(&out) {
        *seen
            .entry(r["ip"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for last in 0..=255u8 {
        let ip = format!("127.78.44.{last}");
        let n = seen.get(&ip).copied().unwrap_or(0);
        let first_excluded = (200..208).contains(&last);
        let newly_excluded = last < 64;
        if first_excluded {
            assert_eq!(n, 0, "{ip}");
        } else if newly_excluded {
            // Probed only if it went before the stop.
            assert_eq!(n, usize::from(before.contains(&ip)), "{ip}");
        } else {
            assert_eq!(n, 1, "{ip}: once, none missed");
        }
    }
    // A state from an earlier layout (exclusion paths, not contents) is
    // refused with a way forward, not silently misapplied.
    std::fs::write(
        &state,
        r#"{"targets":["127.78.44.0/24"],"exclusions":["opt.conf"],"ports":"9","seed":1,"shard":"0/1","done":3}"#,
    )
    .unwrap();
    let o = args("0").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("start the survey over"),
        "{}",
        stderr(&o)
    );
}

/// A telnet device on `ip:23` that fails every login slowly (a prompt
/// every 300 ms), counting the passwords it is sent, for 60 s at most.
fn slow_failing_telnet(ip: &str) -> Arc<AtomicUsize> {
    let l = TcpListener::bind((ip, 23)).unwrap();
    l.set_nonblocking(true).unwrap();
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let Ok((c, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let t = t.clone();
            std::thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                for _ in 0..3 {
                    let mut line = String::new();
                    std::thread::sleep(Duration::from_millis(300));
                    if w.write_all(b"\r\nlogin: ").is_err() || r.read_line(&mut line).is_err() {
                        return;
                    }
                    let _ = w.write_all(b"Password: ");
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    t.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = w.write_all(b"\r\nLogin incorrect\r\n");
                }
            });
        }
    });
    tries
}

/// Review of issue 13: an opt-out reloaded (SIGHUP) while a host's
/// credentials are being tried stops those logins at once, not when the
/// dictionary runs out.
#[test]
fn an_opt_out_during_the_checks_stops_the_logins() {
    let tries = slow_failing_telnet("127.78.49.9");
    let dir = tempfile::tempdir().unwrap();
    let opt = dir.path().join("opt.conf");
    std::fs::write(&opt, "# nothing yet\n").unwrap();
    let mut child = bin()
        .args([
            "survey",
            "--targets",
            "127.78.49.9",
            "--ports",
            "23",
            "--rate",
            "0",
        ])
        .args([
            "--checks",
            "credentials",
            "--timeout",
            "3s",
            "--output",
            "/dev/null",
            "--exclude",
        ])
        .arg(&opt)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while tries.load(Ordering::Relaxed) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no login tried"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&opt, "::ffff:127.78.49.0/120 # opted out now\n").unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    // A login already answered when the signal came may still count.
    std::thread::sleep(Duration::from_millis(1000));
    let at_reload = tries.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        tries.load(Ordering::Relaxed),
        at_reload,
        "logins went on after the opt-out"
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{err}");
    assert!(err.contains("1 hosts not checked: excluded now"), "{err}");
}

/// Review of issue 13: at a low rate a probe waits for its time slot; an
/// opt-out reloaded during that wait holds for it.
#[test]
fn an_opt_out_during_the_rate_wait_holds() {
    let listeners: Vec<Counter> = (0..5).map(|_| Counter::on("127.78.49.20")).collect();
    let ports: Vec<String> = listeners.iter().map(|c| c.port.to_string()).collect();
    let dir = tempfile::tempdir().unwrap();
    let opt = dir.path().join("opt.conf");
    std::fs::write(&opt, "# nothing yet\n").unwrap();
    // One probe every 2 s: at 0 s and 2 s, then the opt-out at 3 s.
    let mut child = bin()
        .args([
            "survey",
            "--targets",
            "127.78.49.20",
            "--ports",
            &ports.join(","),
        ])
        .args([
            "--rate",
            "0.5",
            "--no-grab",
            "--output",
            "/dev/null",
            "--exclude",
        ])
        .arg(&opt)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    std::fs::write(&opt, "127.78.49.20\n").unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    let hits: usize = listeners.iter().map(Counter::hits).sum();
    assert_eq!(hits, 2, "probes after the opt-out");
}
