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
    // Another test may be fetching the same package: unpack beside, rename.
    let work = dir.with_extension(format!("part{}", std::process::id()));
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
