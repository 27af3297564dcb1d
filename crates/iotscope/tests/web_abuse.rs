//! Issue 15: the dashboard under hostile requests, through `iotscope serve`
//! on loopback. Bounded work (series points, time bounds), the client's
//! real address behind a trusted proxy (and only then), limits per IPv4
//! address and IPv6 /64, headers, a bounded password pool, and slowloris.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{http, HttpReply, Server};
use serde_json::json;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

/// A pcap (classic, Ethernet) of SYNs to port 23 of 198.18.0.1 at the given
/// seconds since 1970.
fn pcap(path: &Path, times: &[u32]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, &t) in times.iter().enumerate() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![
            0x45,
            0,
            0,
            40,
            0,
            1,
            0,
            0,
            64,
            6,
            0,
            0,
            203,
            0,
            113,
            5 + i as u8,
        ];
        ip.extend_from_slice(&[198, 18, 0, 1]);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&23u16.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::write(path, out).unwrap();
}

/// A store from `times` with one operator account `op` / `password-op`,
/// and a config trusting `proxies`. Returns (config, db).
fn store(dir: &Path, times: &[u32], proxies: &[&str]) -> (PathBuf, PathBuf) {
    store_with(dir, times, proxies, &[])
}

/// [`store`] with more `telescope analyze` flags.
fn store_with(dir: &Path, times: &[u32], proxies: &[&str], flags: &[&str]) -> (PathBuf, PathBuf) {
    let (cap, db, cfg) = (dir.join("c.pcap"), dir.join("w.db"), dir.join("c.toml"));
    pcap(&cap, times);
    let o = bin()
        .args(["telescope", "analyze"])
        .arg(&cap)
        .args(["--darknet", "198.18.0.0/16", "--bucket", "1m", "--db"])
        .arg(&db)
        .args(flags)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list: Vec<String> = proxies.iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        &cfg,
        format!("[web]\ntrusted_proxies = [{}]\n", list.join(", ")),
    )
    .unwrap();
    common::add_user(&cfg, &db, "op", "operator", None);
    (cfg, db)
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    http(None, port, "GET", path, headers, None)
}

fn get_from(from: [u8; 4], port: u16, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    http(Some(from.into()), port, "GET", path, headers, None)
}

#[test]
fn series_are_bounded_and_times_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    // A sensor without a clock (1970) and a wrapped one (2106): 71 million
    // one-minute buckets between them, in a store whose operator believed
    // every stamp (the telescope's own guard is tested below).
    let (cfg, db) = store_with(
        dir.path(),
        &[1, 0xFFFF_FFFF, 1_700_000_000],
        &[],
        &[
            "--plausible-from",
            "1970-01-01",
            "--plausible-until",
            "2200-01-01",
        ],
    );
    let server = Server::start(&cfg, &db, &[]);
    let started = Instant::now();
    let r = get(server.port, "/api/series?ports=23,24,25,26", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let s = r.json();
    let buckets = s["buckets"].as_u64().unwrap();
    assert!(buckets <= 10_000, "{buckets}");
    assert_eq!(s["sources_merged_by"], "max", "{}", s["bucket_seconds"]);
    let line = &s["series"][0];
    assert_eq!(line["packets"].as_array().unwrap().len() as u64, buckets);
    let total: u64 = line["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 3, "every packet is still counted");
    assert!(started.elapsed() < Duration::from_secs(20));
    // A time past what the store can hold is refused, by name.
    let r = get(server.port, "/api/overview?since=9999-01-01T00:00:00Z", &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("since"), "{}", r.body);
    // Headers: no sniffing anywhere, no caching of API answers.
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let o = get(server.port, "/api/overview", &[]);
    assert_eq!(o.header("cache-control"), Some("no-store"));
    assert_eq!(o.header("x-content-type-options"), Some("nosniff"));
    let page = get(server.port, "/", &[]);
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn the_client_is_named_only_by_a_trusted_proxy_and_limited_per_network() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, db) = store(dir.path(), &[1_700_000_000], &["127.0.0.1/32"]);
    let server = Server::start(&cfg, &db, &["--check-per-minute", "3"]);
    let port = server.port;
    // From the proxy: the right-most untrusted hop is the client.
    let r = get_from(
        [127, 0, 0, 1],
        port,
        "/api/check",
        &[("X-Forwarded-For", "198.51.100.1, 203.0.113.7")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ip"], "203.0.113.7");
    // From anyone else: the peer, whatever it claims.
    let r = get_from(
        [127, 0, 0, 2],
        port,
        "/api/check",
        &[("X-Forwarded-For", "203.0.113.7")],
    );
    assert_eq!(r.json()["ip"], "127.0.0.2");
    // Limits per client behind the proxy: one client's limit is not
    // another's; IPv6 clients of one /64 share one.
    for i in 0..3 {
        let xff = format!("2001:db8:5:6::{}", i + 1);
        let r = get_from(
            [127, 0, 0, 1],
            port,
            "/api/check",
            &[("X-Forwarded-For", &xff)],
        );
        assert_eq!(r.status, 200, "{i}: {}", r.body);
    }
    let r = get_from(
        [127, 0, 0, 1],
        port,
        "/api/check",
        &[("X-Forwarded-For", "2001:db8:5:6:ffff::9")],
    );
    assert_eq!(r.status, 429, "same /64: {}", r.body);
    assert!(r.header("retry-after").is_some());
    let r = get_from(
        [127, 0, 0, 1],
        port,
        "/api/check",
        &[("X-Forwarded-For", "2001:db8:5:7::1")],
    );
    assert_eq!(r.status, 200, "another /64: {}", r.body);
    // A login through the proxy over HTTPS gets a Secure cookie.
    let body = json!({"name": "op", "password": "password-op"}).to_string();
    let r = http(
        Some([127, 0, 0, 1].into()),
        port,
        "POST",
        "/api/login",
        &[
            ("Content-Type", "application/json"),
            ("X-Forwarded-For", "192.0.2.10"),
            ("X-Forwarded-Proto", "https"),
        ],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("set-cookie").unwrap().contains("Secure"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = r.json()["csrf"].as_str().unwrap().to_string();
    let session = [
        ("Content-Type", "application/json"),
        ("Cookie", cookie.as_str()),
        ("X-CSRF-Token", csrf.as_str()),
    ];

    // Bodies are limited per route: a login is a few hundred bytes, an
    // alert status may carry a note.
    let big = "x".repeat(6 * 1024);
    let login = json!({"name": "op", "password": big}).to_string();
    let r = http(
        Some([127, 0, 0, 2].into()),
        port,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        Some(&login),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    let status = json!({"ip": "192.0.2.1", "port": 23, "problem": "default_credentials",
        "status": "acknowledged", "note": big})
    .to_string();
    let r = http(
        Some([127, 0, 0, 2].into()),
        port,
        "POST",
        "/api/alerts/status",
        &session,
        Some(&status),
    );
    assert!(
        r.status != 413 && r.status != 403,
        "{} {}",
        r.status,
        r.body
    );
    let r = http(
        Some([127, 0, 0, 2].into()),
        port,
        "POST",
        "/api/alerts/status",
        &session,
        Some(&"y".repeat(20 * 1024)),
    );
    assert_eq!(r.status, 413, "{}", r.body);
}

#[test]
fn logins_at_once_are_bounded_and_never_fail_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, db) = store(dir.path(), &[1_700_000_000], &["127.0.0.1/32"]);
    let server = Server::start(&cfg, &db, &[]);
    let port = server.port;
    // 120 logins at once, from 60 clients behind the proxy (so the per-
    // client login limit is not what stops them).
    let threads: Vec<_> = (0..120)
        .map(|i| {
            std::thread::spawn(move || {
                let body = json!({"name": "op", "password": "wrong"}).to_string();
                let xff = format!("192.0.2.{}", i % 60 + 1);
                http(
                    Some([127, 0, 0, 1].into()),
                    port,
                    "POST",
                    "/api/login",
                    &[
                        ("Content-Type", "application/json"),
                        ("X-Forwarded-For", &xff),
                    ],
                    Some(&body),
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|&s| s == 401 || s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "the queue bound answered: {statuses:?}"
    );
    // Still serving.
    assert_eq!(get(port, "/api/overview", &[]).status, 200);
}

#[test]
fn half_sent_requests_do_not_hold_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, db) = store(dir.path(), &[1_700_000_000], &[]);
    let server = Server::start(&cfg, &db, &[]);
    let port = server.port;
    // A keep-alive connection that asks nothing more is closed by the
    // header timeout as well.
    let mut idle = socket_from([127, 0, 0, 8], port);
    idle.write_all(b"GET /api/check HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let opened = Instant::now();
    let mut answer = Vec::new();
    let mut b = [0u8; 4096];
    while let Ok(n) = idle.read(&mut b) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&b[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        opened.elapsed() < Duration::from_secs(20),
        "idle for {:?}",
        opened.elapsed()
    );
    // 60 connections from one address, each sending half a request head.
    let mut held = Vec::new();
    for _ in 0..60 {
        let s = socket_from([127, 0, 0, 9], port);
        let mut s = s;
        let _ = s.write_all(b"GET /check HTTP/1.1\r\nHost: x\r\n");
        held.push(s);
    }
    // Everyone else is still served at once.
    let started = Instant::now();
    let r = get_from([127, 0, 0, 10], port, "/api/check", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Beyond the per-client limit the server closed at once; the rest are
    // closed when the header timeout passes.
    let mut closed_at_once = 0;
    for s in held.iter_mut() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 64];
        // Ok(0) or a reset: closed; a timeout: still open.
        let closed = match s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        closed_at_once += usize::from(closed);
    }
    assert!(
        closed_at_once >= 20,
        "{closed_at_once} of 60 closed at once"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in held.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut b = [0u8; 256];
        let mut got = Vec::new();
        while let Ok(n) = s.read(&mut b) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&b[..n]);
        }
        assert!(
            Instant::now() < deadline,
            "a half-sent request held past its timeout"
        );
    }
}

/// Half-sent requests from more addresses than the server has descriptors
/// for: the oldest of them are closed to make room, and a visitor is
/// served while the attack goes on.
#[test]
fn half_sent_requests_from_many_addresses_do_not_lock_visitors_out() {
    if !common::have("prlimit") {
        return common::skip("prlimit (util-linux) is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let (cfg, db) = store(dir.path(), &[1_700_000_000], &[]);
    let server = Server::start_under(&["prlimit", "--nofile=128"], &cfg, &db, &[]);
    let port = server.port;
    let mut held = Vec::new();
    for i in 0..150u32 {
        let mut s = socket_from([127, 66, (i / 250) as u8, (i % 250 + 1) as u8], port);
        let _ = s.write_all(b"GET / HTTP/1.1\r\n");
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let r = get_from([127, 0, 0, 10], port, "/api/check", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(held);
}

fn socket_from(from: [u8; 4], port: u16) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    s.into()
}

#[test]
fn implausible_frame_times_are_counted_in_no_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, db) = (dir.path().join("c.pcap"), dir.path().join("t.db"));
    // 1970 (no clock), 2106 (a wrapped 32-bit clock) and 2023.
    pcap(&cap, &[1, 0xFFFF_FFFF, 1_700_000_000]);
    let o = bin()
        .args(["telescope", "analyze"])
        .arg(&cap)
        .args([
            "--darknet",
            "198.18.0.0/16",
            "--bucket",
            "1m",
            "--format",
            "json",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("2 of 3 frames"), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Every frame is counted; only the plausible one is in the series.
    assert_eq!(s["packets"], 3, "{s}");
    assert_eq!(s["implausible_time"], 2, "{s}");
    assert_eq!(s["files"][0]["implausible_time"], 2, "{s}");
    assert_eq!(s["ports"][0]["packets"], 3, "{s}");
    let series = s["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{s}");
    assert_eq!(series[0]["packets"], 1);
    assert_eq!(series[0]["start"], "2023-11-14T22:13:00Z");

    // The store keeps the count (its buckets hold only the plausible frame).
    let o = bin()
        .args(["telescope", "report", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["implausible_time"], 2, "{r}");
    assert_eq!(r["series"].as_array().unwrap().len(), 1, "{r}");

    // The window is the operator's to widen, and checked.
    let o = bin()
        .args(["telescope", "analyze", "--format", "json"])
        .arg(&cap)
        .args([
            "--plausible-from",
            "1970-01-01",
            "--plausible-until",
            "2200-01-01",
        ])
        .output()
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["implausible_time"], 0, "{s}");
    for bad in [
        ["--plausible-from", "yesterday"],
        ["--plausible-until", "9999-01-01"],
    ] {
        let o = bin()
            .args(["telescope", "analyze"])
            .arg(&cap)
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(bad[0]),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
