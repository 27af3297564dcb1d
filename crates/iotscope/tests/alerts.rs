//! Alerts end to end: a lab survey and a darknet capture in one store,
//! alerts built (and rebuilt without duplicates), and per-ISP reports for
//! ISPs with nested prefixes, each holding exactly its own addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

/// The ISPs: one wide, one nested in it, one nested in that, one IPv6 only.
const ISPS: &[(&str, &str)] = &[
    ("Example ISP A", "127.78.0.0/16"),
    ("Example ISP B", "127.78.15.0/26"),
    ("Example ISP C", "127.78.15.16/28"),
    ("Example ISP D", "2001:db8::/32"),
];

fn owner(ip: &str) -> &'static str {
    let Ok(a) = ip.parse::<Ipv4Addr>() else {
        return "unassigned";
    };
    let a = u32::from(a);
    let mut best: Option<(u32, &str)> = None;
    for (name, p) in ISPS {
        let Some((net, len)) = p.split_once('/') else {
            continue;
        };
        let Ok(net) = net.parse::<Ipv4Addr>() else {
            continue;
        };
        let len: u32 = len.parse().unwrap();
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        if a & mask == u32::from(net) && best.is_none_or(|b| len > b.0) {
            best = Some((len, name));
        }
    }
    match best.map(|b| b.1) {
        Some("Example ISP A") => "example-isp-a",
        Some("Example ISP B") => "example-isp-b",
        Some("Example ISP C") => "example-isp-c",
        _ => "unassigned",
    }
}

#[test]
fn every_isp_report_holds_exactly_its_own_addresses_and_rebuilds_merge() {
    let lab = common::RunningLab::start("127.78.15.0/24", 24, 9);
    let dir = lab.dir.path();
    let db = dir.join("a.db");
    let cfg = dir.join("iotscope.toml");
    let mut text = String::new();
    for (name, prefix) in ISPS {
        text.push_str(&format!(
            "[[isp]]\nname = \"{name}\"\nasn = [64500]\nprefixes = [\"{prefix}\"]\nabuse = \"abuse@example.net\"\n\n"
        ));
    }
    std::fs::write(&cfg, text).unwrap();
    let ok = |c: &mut Command| {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    common::survey_lab_into(
        "127.78.15.0/24",
        "22,23,80,81,502,1883,2323,8080,8081",
        dir,
        &db,
    );
    let pcap = dir.join("d.pcap");
    ok(bin()
        .args([
            "lab",
            "darknet",
            "--packets",
            "20000",
            "--seed",
            "2",
            "--out",
        ])
        .arg(&pcap));
    ok(bin()
        .args([
            "telescope",
            "analyze",
            "--darknet",
            "198.18.0.0/16",
            "--darknet",
            "2001:db8:1::/48",
            "--db",
        ])
        .arg(&db)
        .arg(&pcap)
        .stdout(Stdio::null()));
    let alerts_cmd = |args: &[&str]| {
        let mut c = bin();
        c.arg("--config")
            .arg(&cfg)
            .arg("alerts")
            .args(args)
            .arg("--db")
            .arg(&db);
        c
    };
    let first = ok(&mut alerts_cmd(&["build"]));
    let second = ok(&mut alerts_cmd(&["build"]));
    assert!(
        second.contains(" 0 new"),
        "rebuild merges: {first} / {second}"
    );
    let list = alerts_cmd(&["list", "--format", "json"]).output().unwrap();
    let alerts: Vec<Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert!(alerts
        .iter()
        .any(|a| a["problem"] == "open_control_panel" || a["problem"] == "exposed_telnet"));
    assert!(alerts
        .iter()
        .any(|a| a["problem"].as_str().unwrap().starts_with("infected_")));
    for a in &alerts {
        assert_eq!(a["status"], "new");
        assert_eq!(a["history"].as_array().unwrap().len(), 1, "{a}");
        assert!(!a["evidence"].to_string().contains("password"), "{a}");
    }
    // One alert per service (issue 13): (address, port, problem).
    let keys: BTreeSet<(String, Option<u64>, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["ip"].as_str().unwrap().to_string(),
                a["port"].as_u64(),
                a["problem"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys.len(),
        alerts.len(),
        "one alert per (address, port, problem)"
    );

    let out = dir.join("reports");
    ok(&mut alerts_cmd(&["export", "--out", out.to_str().unwrap()]));
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut rows = 0;
    for file in [
        "example-isp-a",
        "example-isp-b",
        "example-isp-c",
        "example-isp-d",
        "unassigned",
    ] {
        let text = std::fs::read_to_string(out.join(format!("{file}.csv"))).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let ip_col = header.iter().position(|h| *h == "ip").unwrap();
        let tag_col = header.iter().position(|h| *h == "tag").unwrap();
        let port_col = header.iter().position(|h| *h == "port").unwrap();
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            let ip = f[ip_col];
            assert_eq!(owner(ip), file, "{ip} in {file}.csv");
            let key = format!("{ip}:{} {}", f[port_col], f[tag_col]);
            assert!(
                seen.insert(key.clone(), file.into()).is_none(),
                "{key} in two reports"
            );
            rows += 1;
        }
    }
    assert_eq!(rows, alerts.len(), "every alert in exactly one report");
    // The nested ISPs got their own devices.
    for f in ["example-isp-b", "example-isp-c"] {
        assert!(seen.values().any(|v| v == f), "{f} has alerts");
    }
}

/// Rechecks: while the lab runs its alerts persist; once it is gone they are
/// fixed; infected hosts close when unseen for the given time; each change
/// is in the alert's history.
#[test]
fn recheck_marks_persisting_then_fixed_and_keeps_the_history() {
    let lab = common::RunningLab::start("127.78.16.0/24", 12, 4);
    let dir = lab.dir.path().to_path_buf();
    let keep = tempfile::tempdir().unwrap();
    let db = keep.path().join("r.db");
    let run = |args: &[&str]| {
        let out = bin().args(args).arg("--db").arg(&db).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    common::survey_lab_into(
        "127.78.16.0/24",
        "22,23,80,81,502,1883,2323,8080,8081",
        &dir,
        &db,
    );
    let pcap = keep.path().join("d.pcap");
    assert!(bin()
        .args([
            "lab",
            "darknet",
            "--packets",
            "20000",
            "--seed",
            "3",
            "--out"
        ])
        .arg(&pcap)
        .status()
        .unwrap()
        .success());
    assert!(bin()
        .args(["telescope", "analyze", "--darknet", "198.18.0.0/16", "--db"])
        .arg(&db)
        .arg(&pcap)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    run(&["alerts", "build"]);
    let survey_alerts = |alerts: &[Value]| -> Vec<Value> {
        alerts
            .iter()
            .filter(|a| !a["problem"].as_str().unwrap().starts_with("infected_"))
            .cloned()
            .collect()
    };
    let list = || -> Vec<Value> {
        let out = bin()
            .args(["alerts", "list", "--format", "json", "--db"])
            .arg(&db)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = list();
    assert!(!survey_alerts(&before).is_empty());
    let said = run(&["alerts", "recheck", "--timeout", "2s"]);
    let now = list();
    for a in &now {
        assert_eq!(a["status"], "persisting", "{a} ({said})");
    }
    run(&["alerts", "recheck", "--infected-ttl", "0s"]);
    for a in list()
        .iter()
        .filter(|a| a["problem"].as_str().unwrap().starts_with("infected_"))
    {
        assert_eq!(a["status"], "fixed", "{a}");
    }
    drop(lab); // every device goes away
    std::thread::sleep(std::time::Duration::from_millis(300));
    run(&["alerts", "recheck", "--timeout", "1s"]);
    for a in survey_alerts(&list()) {
        assert_eq!(a["status"], "fixed", "{a}");
        let h: Vec<&str> = a["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        assert_eq!(h, ["new", "persisting", "fixed"], "{a}");
    }
}

/// With an AS table configured, an address outside every ISP prefix goes
/// to the ISP of its AS, else to a report for its AS; the AS is in the rows.
#[test]
fn enrichment_assigns_by_as_when_no_prefix_matches() {
    let lab = common::RunningLab::start("127.78.17.0/24", 10, 6);
    let dir = lab.dir.path();
    let db = dir.join("e.db");
    let table = dir.join("asn.csv");
    // The ip-location-db CSV format: start,end,asn,organisation.
    std::fs::write(
        &table,
        "127.78.17.0,127.78.17.4,64501,\"Example Access, Inc.\"\n127.78.17.5,127.78.17.255,64502,Example Hosting\n",
    )
    .unwrap();
    let cfg = dir.join("iotscope.toml");
    std::fs::write(
        &cfg,
        format!(
            "[enrich]\nasn = [\"{}\"]\nasn_format = \"csv\"\n\n[[isp]]\nname = \"Example ISP E\"\nasn = [64501]\nabuse = \"abuse@e.example\"\n",
            table.display()
        ),
    )
    .unwrap();
    common::survey_lab_into(
        "127.78.17.0/24",
        "22,23,80,81,502,1883,2323,8080,8081",
        dir,
        &db,
    );
    let run = |args: &[&str]| {
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
    };
    run(&["build"]);
    let reports = dir.join("reports");
    run(&["export", "--out", reports.to_str().unwrap()]);
    let mut total = 0;
    for (file, lo, hi, asn) in [
        ("example-isp-e", 0u8, 4u8, "64501"),
        ("as64502", 5, 255, "64502"),
    ] {
        let text =
            std::fs::read_to_string(reports.join(format!("{file}.csv"))).unwrap_or_else(|e| {
                let names: Vec<_> = std::fs::read_dir(&reports)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                panic!("{file}.csv: {e}; there are {names:?}")
            });
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let (ip_col, asn_col) = (
            header.iter().position(|h| *h == "ip").unwrap(),
            header.iter().position(|h| *h == "asn").unwrap(),
        );
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            let last: u8 = f[ip_col].rsplit('.').next().unwrap().parse().unwrap();
            assert!((lo..=hi).contains(&last), "{} in {file}", f[ip_col]);
            assert_eq!(f[asn_col], asn);
            total += 1;
        }
    }
    assert!(total > 0);
    assert!(
        !reports.join("unassigned.csv").exists()
            || std::fs::read_to_string(reports.join("unassigned.csv"))
                .unwrap()
                .lines()
                .count()
                == 1
    );
}

/// `alerts send` through a relay on loopback (a minimal SMTP server in this
/// test): the ISP whose message was accepted has its alerts notified, with
/// the relay's answer in the history; the refused one keeps them new and the
/// command says so with a non-zero exit.
#[test]
fn send_marks_notified_only_what_the_relay_accepted() {
    use std::io::{BufRead, BufReader, Write};
    let lab = common::RunningLab::start("127.78.18.0/24", 12, 8);
    let dir = lab.dir.path();
    let db = dir.join("s.db");
    common::survey_lab_into(
        "127.78.18.0/24",
        "22,23,80,81,502,1883,2323,8080,8081",
        dir,
        &db,
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let relay = std::thread::spawn(move || {
        let mut messages = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while messages.len() < 2 && std::time::Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut w = stream.try_clone().unwrap();
            let mut r = BufReader::new(stream);
            w.write_all(b"220 relay.test ESMTP\r\n").unwrap();
            let (mut rcpt, mut data) = (String::new(), String::new());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                let cmd = line.trim_end().to_string();
                line.clear();
                let reply: &[u8] = if cmd.starts_with("EHLO") {
                    b"250-relay.test\r\n250 SIZE 10000000\r\n"
                } else if cmd.starts_with("MAIL") {
                    b"250 OK\r\n"
                } else if cmd.starts_with("RCPT") {
                    rcpt = cmd.clone();
                    if cmd.contains("refuse") {
                        b"550 no such mailbox\r\n"
                    } else {
                        b"250 OK\r\n"
                    }
                } else if cmd == "DATA" {
                    w.write_all(b"354 go ahead\r\n").unwrap();
                    let mut l = String::new();
                    while r.read_line(&mut l).unwrap_or(0) > 0 && l != ".\r\n" {
                        data.push_str(&l);
                        l.clear();
                    }
                    b"250 2.0.0 queued as 42\r\n"
                } else if cmd == "QUIT" {
                    w.write_all(b"221 bye\r\n").unwrap();
                    break;
                } else {
                    b"502 unknown\r\n"
                };
                w.write_all(reply).unwrap();
            }
            messages.push((rcpt, data));
        }
        messages
    });
    let cfg = dir.join("iotscope.toml");
    std::fs::write(
        &cfg,
        format!(
            "[smtp]\nserver = \"127.0.0.1:{port}\"\nfrom = \"cert@example.net\"\n\n\
             [[isp]]\nname = \"Accepting ISP\"\nprefixes = [\"127.78.18.0/29\"]\nabuse = \"abuse@ok.example\"\n\n\
             [[isp]]\nname = \"Refusing ISP\"\nprefixes = [\"127.78.18.8/29\"]\nabuse = \"refuse@bad.example\"\n"
        ),
    )
    .unwrap();
    let alerts = |args: &[&str]| {
        bin()
            .arg("--config")
            .arg(&cfg)
            .arg("alerts")
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap()
    };
    assert!(alerts(&["build"]).status.success());
    let sent = alerts(&["send"]);
    let err = String::from_utf8_lossy(&sent.stderr);
    assert_eq!(sent.status.code(), Some(2), "{err}");
    assert!(err.contains("Refusing ISP") && err.contains("550"), "{err}");
    let messages = relay.join().unwrap();
    let ok = messages
        .iter()
        .find(|(r, _)| r.contains("abuse@ok.example"))
        .expect("a message to the accepting ISP");
    assert!(
        ok.1.contains("Content-Disposition: attachment; filename=\"accepting-isp.csv\""),
        "{}",
        ok.1
    );
    let list: Vec<Value> =
        serde_json::from_slice(&alerts(&["list", "--format", "json"]).stdout).unwrap();
    let mut notified = 0;
    for a in &list {
        let last: u8 = a["ip"]
            .as_str()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        if last < 8 {
            assert_eq!(a["status"], "notified", "{a}");
            let h = a["history"].as_array().unwrap();
            assert!(
                h.last().unwrap()["note"]
                    .as_str()
                    .unwrap()
                    .contains("queued as 42"),
                "{a}"
            );
            notified += 1;
        } else {
            assert_eq!(a["status"], "new", "{a}");
        }
    }
    assert!(notified > 0);
}

/// A relay for `send_uses_starttls...`: Python's ssl (OpenSSL) serving
/// STARTTLS with a certificate for 127.0.0.1 made by `openssl req`.
struct TlsRelay {
    child: std::process::Child,
    port: u16,
    out: std::path::PathBuf,
}

impl TlsRelay {
    fn start(dir: &std::path::Path, name: &str, flags: &[&str]) -> TlsRelay {
        let portfile = dir.join(format!("{name}.port"));
        let out = dir.join(format!("{name}.json"));
        let child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/common/smtp_relay.py"
            ))
            .arg(&portfile)
            .arg(&out)
            .arg("--cert")
            .arg(dir.join("relay.pem"))
            .arg("--key")
            .arg(dir.join("relay.key"))
            .args(flags)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&portfile) {
                break p.trim().parse().unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the relay did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        TlsRelay { child, port, out }
    }

    /// What the relay saw, once it has exited.
    fn sessions(mut self) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the relay did not stop"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        serde_json::from_slice(&std::fs::read(&self.out).unwrap_or_else(|_| b"[]".to_vec()))
            .unwrap()
    }
}

/// `alerts send` takes STARTTLS when the relay offers it and checks the
/// relay's certificate: with the right CA the report travels under TLS and
/// the history says so; with the wrong CA nothing is sent (not even in
/// clear) and the alerts stay new; `tls = "require"` refuses a relay that
/// does not offer STARTTLS.
#[test]
fn send_uses_starttls_and_checks_the_relays_certificate() {
    for tool in ["python3", "openssl"] {
        if !common::have(tool) {
            return common::skip(&format!("{tool} is not installed"));
        }
    }
    let lab = common::RunningLab::start("127.78.27.0/24", 6, 4);
    let dir = lab.dir.path();
    let db = dir.join("s.db");
    common::survey_lab_into("127.78.27.0/24", "22,23,80,2323,8080", dir, &db);
    // Two CAs; the relay's certificate (for 127.0.0.1) is signed by the first.
    let openssl = |args: &[&str]| {
        let st = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl {args:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key, pem, subj) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN={ca}"),
        );
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subj];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &pem]);
        openssl(&args);
    }
    std::fs::write(
        dir.join("relay.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:relay.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let mut args = vec!["req", "-new", "-subj", "/CN=relay.test"];
    args.extend(ec);
    args.extend(["-keyout", "relay.key", "-out", "relay.csr"]);
    openssl(&args);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "relay.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "relay.ext",
        "-out",
        "relay.pem",
    ]);
    let config = |port: u16, ca: &str, tls: &str| {
        let cfg = dir.join(format!("c-{port}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[smtp]\nserver = \"127.0.0.1:{port}\"\nfrom = \"cert@example.net\"\ntls = \"{tls}\"\nca_file = \"{}\"\n\n\
                 [[isp]]\nname = \"Lab ISP\"\nprefixes = [\"127.78.27.0/24\"]\nabuse = \"abuse@lab.example\"\n",
                dir.join(ca).display()
            ),
        )
        .unwrap();
        cfg
    };
    let alerts = |cfg: &std::path::Path, args: &[&str]| {
        bin()
            .arg("--config")
            .arg(cfg)
            .arg("alerts")
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap()
    };
    let statuses = |cfg: &std::path::Path| -> Vec<Value> {
        serde_json::from_slice(&alerts(cfg, &["list", "--format", "json"]).stdout).unwrap()
    };

    // The wrong CA: the handshake fails, no message, alerts stay new.
    let relay = TlsRelay::start(dir, "wrong-ca", &["--require-tls"]);
    let cfg = config(relay.port, "other-ca.pem", "starttls");
    assert!(alerts(&cfg, &["build"]).status.success());
    let out = alerts(&cfg, &["send"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("TLS") && err.contains("Lab ISP"), "{err}");
    let seen = relay.sessions();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0]["mail"].is_null() && seen[0]["data"] == "",
        "{seen:?}"
    );
    let list = statuses(&cfg);
    assert!(!list.is_empty());
    assert!(list.iter().all(|a| a["status"] == "new"), "{list:?}");

    // A relay without STARTTLS and tls = "require": refused before MAIL.
    let relay = TlsRelay::start(dir, "plain", &["--no-starttls"]);
    let cfg = config(relay.port, "ca.pem", "require");
    let out = alerts(&cfg, &["send"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not offer STARTTLS"),
        "{err}"
    );
    let seen = relay.sessions();
    assert!(seen[0]["mail"].is_null(), "{seen:?}");

    // The right CA: the report travels under TLS and is accepted.
    let relay = TlsRelay::start(dir, "good", &["--require-tls"]);
    let cfg = config(relay.port, "ca.pem", "starttls");
    let out = alerts(&cfg, &["send"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("STARTTLS TLSv1_3"), "{err}");
    let seen = relay.sessions();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["tls"], "TLSv1.3", "{seen:?}");
    assert_eq!(seen[0]["ehlo"], 2, "EHLO again after STARTTLS: {seen:?}");
    assert!(seen[0]["rcpt"]
        .as_str()
        .unwrap()
        .contains("abuse@lab.example"));
    assert!(
        seen[0]["data"]
            .as_str()
            .unwrap()
            .contains("filename=\"lab-isp.csv\""),
        "{seen:?}"
    );
    for a in statuses(&cfg) {
        assert_eq!(a["status"], "notified", "{a}");
        let note = a["history"].as_array().unwrap().last().unwrap()["note"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            note.contains("STARTTLS") && note.contains("queued as 7"),
            "{note}"
        );
    }
}
