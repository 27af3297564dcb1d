//! The README's first command: `iotscope demo` builds everything from
//! embedded defaults and serves the dashboard with a login that works.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_demo_serves_the_whole_system_with_a_working_login() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args([
            "demo",
            "--packets",
            "60000",
            "--days",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx_out.send(line);
        }
    });
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut password, mut port) = (None, None);
    while port.is_none() || password.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the demo did not start the dashboard in time");
        eprintln!("[demo] {line}");
        if let Some(p) = line.trim().strip_prefix("operator login: operator / ") {
            password = Some(p.trim().to_string());
        }
        if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
            port = Some(rest.trim_end_matches('/').parse::<u16>().unwrap());
        }
    }
    let (port, password) = (port.unwrap(), password.unwrap());
    let o = common::http(None, port, "GET", "/api/overview", &[], None).json();
    assert!(o["packets"].as_u64().unwrap() > 50_000, "{o}");
    assert!(o["infected"].as_u64().unwrap() > 0);
    assert!(
        !o["top_countries"].as_array().unwrap().is_empty(),
        "the demo's location table places sources"
    );
    let m = common::http(None, port, "GET", "/api/map", &[], None).json();
    assert!(
        m["points"].as_array().unwrap().len() > 100,
        "{}",
        m["sources"]
    );
    let s = common::http(None, port, "GET", "/api/series", &[], None).json();
    assert!(s["buckets"].as_u64().unwrap() >= 47);
    let login = common::http(
        None,
        port,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        Some(&serde_json::json!({"name": "operator", "password": password}).to_string()),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let f = common::http(
        None,
        port,
        "GET",
        "/api/findings",
        &[("Cookie", &cookie)],
        None,
    )
    .json();
    assert!(
        f["total"].as_u64().unwrap() > 0,
        "the lab's findings are there"
    );
    let a = common::http(
        None,
        port,
        "GET",
        "/api/alerts?limit=1",
        &[("Cookie", &cookie)],
        None,
    )
    .json();
    assert!(a["total"].as_u64().unwrap() > 0);
    let page = common::http(None, port, "GET", "/", &[], None);
    assert!(page.body.contains("iotscope"));
    let _ = child.kill();
    let _ = child.wait();
}
