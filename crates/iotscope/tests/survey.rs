//! The survey against the lab: every open service of the manifest is found
//! with the right protocol and banner, nothing else is reported open, the
//! lab's audit log shows no login and no change, shards add up to the
//! whole, and exclusions are honoured. Loopback only.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::RunningLab;

const PORTS: &str = "22,23,80,81,502,1883,2323,8080,8081";

fn survey(args: &[&str], out: &Path) -> Vec<Value> {
    let st = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args([
            "survey",
            "--ports",
            PORTS,
            "--rate",
            "0",
            // Slow lab devices wait a second before their first byte.
            "--timeout",
            "3s",
            "--output",
        ])
        .arg(out)
        .args(args)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn pairs(rows: &[Value]) -> BTreeSet<(String, u64)> {
    rows.iter()
        .map(|r| {
            (
                r["ip"].as_str().unwrap().to_string(),
                r["port"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn finds_every_listed_service_and_nothing_else_without_touching_anything() {
    let lab = RunningLab::start("127.78.21.0/24", 50, 1);
    let db = lab.dir.path().join("survey.db");
    let rows = survey(
        &["--targets", "127.78.21.0/24", "--db", db.to_str().unwrap()],
        &lab.dir.path().join("s.jsonl"),
    );
    // The store holds the same pairs as the JSON lines.
    use iotscope_store::Store;
    let stored = iotscope_store::SqliteStore::open(&db)
        .unwrap()
        .services()
        .unwrap();
    let stored_pairs: BTreeSet<(String, u64)> = stored
        .iter()
        .map(|o| (o.ip.clone(), o.port as u64))
        .collect();
    assert_eq!(stored_pairs, pairs(&rows));
    let wanted: BTreeSet<(String, u64)> = lab.manifest["devices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| {
            d["services"].as_array().unwrap().iter().map(move |s| {
                (
                    d["ip"].as_str().unwrap().to_string(),
                    s["port"].as_u64().unwrap(),
                )
            })
        })
        .filter(|(_, p)| PORTS.split(',').any(|q| q.parse::<u64>().unwrap() == *p))
        .collect();
    assert_eq!(pairs(&rows), wanted, "open pairs = the manifest's");
    for r in &rows {
        let d = lab.manifest["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ip"] == r["ip"])
            .unwrap();
        let svc = d["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["port"] == r["port"])
            .unwrap();
        match svc["service"].as_str().unwrap() {
            "telnet" => assert_eq!(
                r["banner"]["prompt"].as_str().unwrap(),
                d["telnet"]["login_prompt"].as_str().unwrap().trim()
            ),
            "http" => {
                assert_eq!(r["banner"]["server"], d["web"]["server"]);
                let scheme = r["banner"]["www_authenticate"]["scheme"]
                    .as_str()
                    .unwrap_or("none")
                    .to_ascii_lowercase();
                let auth = d["web"]["auth"].as_str().unwrap();
                assert_eq!(scheme, if auth == "form" { "none" } else { auth }, "{r}");
            }
            "ssh" => assert_eq!(r["banner"]["version"], d["ssh_banner"]),
            "mqtt" => assert_eq!(r["banner"]["return_code"], 0),
            "modbus" => assert_eq!(r["banner"]["device_identification"]["vendor"], d["vendor"]),
            "garbage" | "tarpit" | "accept_close" => assert_ne!(r["status"], "open", "{r}"),
            other => panic!("{other}"),
        }
    }
    let audit = std::fs::read_to_string(&lab.audit).unwrap_or_default();
    assert!(
        !audit.contains("\"state_change\"")
            && !audit.contains("\"login\"")
            && !audit.contains("\"command\""),
        "{audit}"
    );
}

#[test]
fn shards_add_up_to_the_whole_and_exclusions_hold() {
    let lab = RunningLab::start("127.78.22.0/24", 50, 1);
    let d = lab.dir.path();
    let whole = pairs(&survey(
        &["--targets", "127.78.22.0/24"],
        &d.join("w.jsonl"),
    ));
    let mut union = BTreeSet::new();
    for i in 0..3 {
        let part = pairs(&survey(
            &["--targets", "127.78.22.0/24", "--shard", &format!("{i}/3")],
            &d.join(format!("p{i}.jsonl")),
        ));
        assert!(union.is_disjoint(&part), "shards overlap");
        union.extend(part);
    }
    assert_eq!(union, whole);
    let ex = d.join("exclude.conf");
    std::fs::write(
        &ex,
        "# opt-out of one network\n127.78.22.0/27  # first 32 addresses\n",
    )
    .unwrap();
    let rest = pairs(&survey(
        &[
            "--targets",
            "127.78.22.0/24",
            "--exclude",
            ex.to_str().unwrap(),
        ],
        &d.join("x.jsonl"),
    ));
    assert!(rest
        .iter()
        .all(|(ip, _)| ip.rsplit('.').next().unwrap().parse::<u32>().unwrap() >= 32));
    assert_eq!(
        rest,
        whole
            .iter()
            .filter(|(ip, _)| ip.rsplit('.').next().unwrap().parse::<u32>().unwrap() >= 32)
            .cloned()
            .collect()
    );
}

#[test]
fn no_targets_no_scan() {
    let out = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args(["survey", "--ports", "23"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no targets"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// FTP, RTSP and TLS grabs against real answers: a multi-line FTP greeting,
/// an RTSP camera's OPTIONS reply, and OpenSSL serving a self-signed
/// certificate whose fingerprint OpenSSL itself reports.
#[test]
fn ftp_rtsp_and_tls_modules_record_what_answers() {
    use std::io::{Read, Write};
    if !common::have("openssl") {
        return common::skip("openssl is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=IPC-HDW1230S/O=Dahua Technology"])
        .args(["-addext", "subjectAltName=IP:127.78.24.3"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let fp = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout)
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_lowercase();
    let mut tls = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            "127.78.24.3:8443",
            "-www",
            "-quiet",
            "-cert",
        ])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // One connection each, answered by plain threads.
    let ftp = std::net::TcpListener::bind("127.78.24.1:2121").unwrap();
    let rtsp = std::net::TcpListener::bind("127.78.24.2:8554").unwrap();
    let ftp_server = std::thread::spawn(move || {
        let (mut c, _) = ftp.accept().unwrap();
        c.write_all(b"220-Welcome to the NAS\r\n220 (vsFTPd 3.0.3)\r\n")
            .unwrap();
        let mut quit = [0u8; 6];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.read_exact(&mut quit);
        quit
    });
    let rtsp_server = std::thread::spawn(move || {
        let (mut c, _) = rtsp.accept().unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 512];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = c.read(&mut b).unwrap();
            assert!(n > 0);
            req.extend_from_slice(&b[..n]);
        }
        c.write_all(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: Hipcam RealServer/V1.0\r\nPublic: OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY\r\n\r\n").unwrap();
        String::from_utf8(req).unwrap()
    });
    let started = Instant::now();
    let out = dir.path().join("rows.jsonl");
    let rows = loop {
        let st = Command::new(env!("CARGO_BIN_EXE_iotscope"))
            .args([
                "survey",
                "--targets",
                "127.78.24.3",
                "--ports",
                "8443",
                "--output",
            ])
            .arg(&out)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let text = std::fs::read_to_string(&out).unwrap();
        if !text.is_empty() || started.elapsed() > Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200)); // s_server still starting
    };
    let _ = tls.kill();
    let _ = tls.wait();
    let tls_row: Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    assert_eq!(tls_row["service"], "tls");
    let c = &tls_row["banner"]["certificate"];
    assert_eq!(c["subject"], "CN=IPC-HDW1230S, O=Dahua Technology");
    assert_eq!(c["self_signed"], true);
    assert_eq!(c["sha256"], fp.as_str());
    assert_eq!(c["names"][0], "127.78.24.3");
    assert_eq!(tls_row["banner"]["version"], "TLSv1.2");

    let rows = survey_rows(
        &[
            "--targets",
            "127.78.24.1-127.78.24.2",
            "--ports",
            "2121,8554",
        ],
        dir.path(),
    );
    let by_port = |p: u64| rows.iter().find(|r| r["port"] == p).unwrap().clone();
    let f = by_port(2121);
    assert_eq!(
        (f["service"].as_str(), f["banner"]["code"].as_u64()),
        (Some("ftp"), Some(220))
    );
    assert!(f["banner"]["greeting"]
        .as_str()
        .unwrap()
        .ends_with("220 (vsFTPd 3.0.3)"));
    let r = by_port(8554);
    assert_eq!(r["banner"]["server"], "Hipcam RealServer/V1.0");
    assert_eq!(r["banner"]["methods"][4], "PLAY");
    // Nothing beyond a goodbye to FTP, and only OPTIONS to RTSP.
    assert_eq!(&ftp_server.join().unwrap(), b"QUIT\r\n");
    assert!(rtsp_server
        .join()
        .unwrap()
        .starts_with("OPTIONS * RTSP/1.0\r\n"));
}

/// Runs a survey with `args`, returning its rows.
fn survey_rows(args: &[&str], dir: &Path) -> Vec<Value> {
    let out = dir.join("survey-rows.jsonl");
    let st = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .arg("survey")
        .args(args)
        .arg("--output")
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An opt-out that arrives during a sweep: the operator adds the range to
/// its exclusion file and sends SIGHUP; from then on nothing in the range
/// is probed, and the run goes on.
#[test]
fn exclusions_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let exclude = dir.path().join("opt-out.conf");
    std::fs::write(&exclude, "# opt-out requests\n").unwrap();
    let out = dir.path().join("rows.jsonl");
    // 256 closed pairs at 100/s: about 2.6 s, every probe reported (--report-closed).
    let mut child = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args([
            "survey",
            "--targets",
            "127.78.26.0/24",
            "--ports",
            "9",
            "--rate",
            "100",
        ])
        .args(["--report-closed", "--no-grab", "--exclude"])
        .arg(&exclude)
        .arg("--output")
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(
        &exclude,
        "# opt-out requests\n127.78.26.128/25 # ticket 42\n",
    )
    .unwrap();
    let _ = Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status();
    let reloaded = std::time::SystemTime::now();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("SIGHUP: 1 exclusion ranges in force"), "{err}");
    let rows: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let upper: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            r["ip"]
                .as_str()
                .unwrap()
                .rsplit('.')
                .next()
                .unwrap()
                .parse::<u8>()
                .unwrap()
                >= 128
        })
        .collect();
    // Some of the upper half went before the reload (the order is random)...
    assert!(
        !upper.is_empty() && upper.len() < 128,
        "{} upper rows",
        upper.len()
    );
    // ...and none after it (a probe in flight at the signal may end just after).
    let cutoff =
        humantime::format_rfc3339_millis(reloaded + Duration::from_millis(100)).to_string();
    for r in &upper {
        assert!(
            r["ts"].as_str().unwrap() < cutoff.as_str(),
            "{r} after the reload at {cutoff}"
        );
    }
    let lower = rows.len() - upper.len();
    assert_eq!(lower, 128, "the rest of the sweep went on");
    assert!(
        err.contains(&format!("{} skipped by exclusions", 128 - upper.len())),
        "{err}"
    );
}

/// IPv6 targets as explicit addresses: a service on ::1 is found with its
/// banner, and an IPv6 exclusion removes it (then nothing is left: no scan).
#[test]
fn ipv6_targets_are_explicit_addresses() {
    use std::io::{Read, Write};
    let Ok(listener) = std::net::TcpListener::bind("[::1]:2121") else {
        eprintln!("no IPv6 loopback here: nothing to test");
        return;
    };
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"220 (vsFTPd 3.0.3)\r\n").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut quit = [0u8; 6];
        let _ = c.read_exact(&mut quit);
    });
    let dir = tempfile::tempdir().unwrap();
    let rows = survey_rows(&["--targets", "::1", "--ports", "2121"], dir.path());
    server.join().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["ip"], "::1");
    assert_eq!(rows[0]["banner"]["code"], 220);
    let ex = dir.path().join("v6.conf");
    std::fs::write(&ex, "::1/128 # opted out\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args(["survey", "--targets", "::1", "--ports", "2121", "--exclude"])
        .arg(&ex)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no targets"));
    let out = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args(["survey", "--targets", "2001:db8::/64", "--ports", "23"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("explicit addresses"));
}

/// SYN mode without CAP_NET_RAW says what it needs and what to use instead.
#[test]
fn syn_mode_without_raw_sockets_says_why() {
    // Drop every capability (setpriv as root; an unprivileged user has none).
    let mut cmd = if common::effective_uid() == 0 && common::have("setpriv") {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ]);
        c.arg(env!("CARGO_BIN_EXE_iotscope"));
        c
    } else if common::effective_uid() != 0 {
        Command::new(env!("CARGO_BIN_EXE_iotscope"))
    } else {
        return common::skip("root without setpriv cannot drop CAP_NET_RAW");
    };
    let out = cmd
        .args([
            "survey",
            "--mode",
            "syn",
            "--targets",
            "127.78.24.1",
            "--ports",
            "23",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("--mode connect"),
        "{err}"
    );
}

#[test]
fn an_interrupted_run_resumes_and_together_they_find_exactly_what_one_run_finds() {
    let lab = RunningLab::start("127.78.23.0/24", 50, 1);
    let d = lab.dir.path();
    let whole_rows = survey(&["--targets", "127.78.23.0/24"], &d.join("whole.jsonl"));
    let (out, state) = (d.join("part.jsonl"), d.join("state.json"));
    // First run at 100 probes/s, stopped after about 3 s with SIGTERM.
    let mut child = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args([
            "survey",
            "--targets",
            "127.78.23.0/24",
            "--ports",
            PORTS,
            "--rate",
            "100",
            "--timeout",
            "1s",
            "--output",
        ])
        .arg(&out)
        .arg("--resume")
        .arg(&state)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
    let elapsed = started.elapsed().as_secs_f64();
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let done = saved["done"].as_u64().unwrap();
    // The rate cap is a safety property: never more than rate x time (+1).
    assert!(
        done > 0 && done as f64 <= 100.0 * elapsed + 1.0,
        "{done} probes in {elapsed:.2} s at 100/s"
    );
    // Resume at full speed; rows are appended.
    let st = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args([
            "survey",
            "--targets",
            "127.78.23.0/24",
            "--ports",
            PORTS,
            "--timeout",
            "1s",
            "--output",
        ])
        .arg(&out)
        .arg("--resume")
        .arg(&state)
        .args(["--rate", "0"])
        .stderr(Stdio::null())
        .status();
    // A different rate is allowed on resume; only targets, ports, seed and shard must match.
    assert!(st.unwrap().success());
    assert!(!state.exists(), "a finished run removes its state");
    let rows: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), whole_rows.len(), "no pair probed twice");
    assert_eq!(pairs(&rows), pairs(&whole_rows));
    // A mismatched resume is refused.
    std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();
    let out2 = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args([
            "survey",
            "--targets",
            "127.78.23.0/25",
            "--ports",
            PORTS,
            "--output",
        ])
        .arg(d.join("other.jsonl"))
        .arg("--resume")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out2.status.code(), Some(2));
}
