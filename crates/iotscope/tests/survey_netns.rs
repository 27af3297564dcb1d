//! Survey safety, tested on the wire: the survey runs inside a network
//! namespace this test creates (a veth to a second namespace that owns
//! 198.18.0.0/16, no other route), tcpdump records every packet it sends,
//! and the capture must show SYNs only to targets minus exclusions, each
//! pair exactly once, within the rate cap, and a run that stops by itself.
//! Needs root, ip, tcpdump and tshark; skipped (and failed under
//! IOTSCOPE_REQUIRE_TOOLS) without them.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{effective_uid, have, skip, ScanNet};

#[test]
fn every_packet_goes_to_a_target_once_within_the_rate_and_the_run_ends() {
    for tool in ["ip", "tcpdump", "tshark"] {
        if !have(tool) {
            return skip(&format!("{tool} is not installed"));
        }
    }
    if effective_uid() != 0 {
        return skip("not root: network namespaces need it");
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = ScanNet::up();
    let cap = dir.path().join("sent.pcap");
    let exclude = dir.path().join("opt-out.conf");
    std::fs::write(
        &exclude,
        "198.18.0.0/26   # an operator who opted out\n198.18.0.200/32\n",
    )
    .unwrap();
    // Record everything the scanner's interface sends.
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.scanner,
            "tcpdump",
            "-i",
            "sv0",
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
    let rate = 200.0;
    let started = Instant::now();
    let out = Command::new("timeout")
        .args([
            "60",
            "ip",
            "netns",
            "exec",
            &ns.scanner,
            env!("CARGO_BIN_EXE_iotscope"),
            "survey",
        ])
        .args([
            "--targets",
            "198.18.0.0/24",
            "--ports",
            "23,80",
            "--rate",
            "200",
            "--timeout",
            "1s",
            "--no-grab",
            "--exclude",
        ])
        .arg(&exclude)
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "the run ends by itself: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(800));
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(dump.id().to_string())
        .status();
    let _ = dump.wait();

    let fields = Command::new("tshark")
        .args(["-r"])
        .arg(&cap)
        .args([
            "-n",
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags",
            "-e",
            "frame.time_relative",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(fields.stdout).unwrap();
    let mut syns: HashMap<(String, u16), u32> = HashMap::new();
    let mut first_last = (f64::MAX, 0f64);
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 || f[0].is_empty() {
            continue; // ARP and the like
        }
        let dst: std::net::Ipv4Addr = f[0].parse().unwrap();
        let o = dst.octets();
        assert!(
            o[0] == 198 && o[1] == 18 && o[2] == 0,
            "packet to {dst}, outside the targets"
        );
        assert!(o[3] >= 64 && o[3] != 200, "packet to excluded {dst}");
        let flags = u16::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap();
        if flags & 0x3f == 0x02 {
            *syns
                .entry((f[0].to_string(), f[1].parse().unwrap()))
                .or_default() += 1;
            let t: f64 = f[3].parse().unwrap();
            first_last = (first_last.0.min(t), first_last.1.max(t));
        }
    }
    // 256 - 64 excluded - 1 excluded = 191 addresses, 2 ports, each once.
    assert_eq!(syns.len(), 191 * 2, "every target pair probed");
    assert!(syns.values().all(|&n| n == 1), "no pair probed twice");
    // The rate cap: 382 SYNs at 200/s cannot take less than (382 - 1) / 200 s.
    let span = first_last.1 - first_last.0;
    assert!(
        span >= (382.0 - 1.0) / rate * 0.95,
        "{} SYNs in {span:.2} s exceed {rate}/s",
        syns.len()
    );
    assert!(elapsed < 30.0);
}

/// SYN mode against a lab in the target namespace: every open pair of the
/// manifest outside the exclusions is found with its banner, nothing else
/// is reported even while forged SYN/ACKs arrive, every raw probe goes to a
/// target pair exactly once at the asked rate, and the run ends by itself.
#[test]
fn syn_mode_finds_exactly_the_open_pairs_and_probes_only_targets() {
    for tool in ["ip", "tcpdump", "tshark", "python3"] {
        if !have(tool) {
            return skip(&format!("{tool} is not installed"));
        }
    }
    if effective_uid() != 0 {
        return skip("not root: network namespaces and raw sockets need it");
    }
    let ns = ScanNet::up();
    let lab = common::RunningLab::start_in(Some(&ns.target), "198.18.1.0/24", 40, 17);
    let dir = lab.dir.path();
    let exclude = dir.join("opt-out.conf");
    std::fs::write(&exclude, "198.18.1.0/29 # opted out\n").unwrap();
    let excluded = |ip: &std::net::Ipv4Addr| ip.octets()[2] == 1 && ip.octets()[3] < 8;
    let mut expected: std::collections::BTreeMap<(std::net::Ipv4Addr, u16), String> =
        Default::default();
    // The lab's "noise" devices answer garbage on a well-known port; the
    // module named after the port reports what it expected to find.
    let module_of = |port: u16, service: &str| match service {
        "garbage" => format!("garbage:{port}"),
        s => s.to_string(),
    };
    let mut ports = std::collections::BTreeSet::from([81u16]);
    for d in lab.devices() {
        let ip: std::net::Ipv4Addr = d["ip"].as_str().unwrap().parse().unwrap();
        for s in d["services"].as_array().unwrap() {
            let port = s["port"].as_u64().unwrap() as u16;
            ports.insert(port);
            if !excluded(&ip) {
                expected.insert((ip, port), module_of(port, s["service"].as_str().unwrap()));
            }
        }
    }
    let port_list = ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let cap = dir.join("sent.pcap");
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.scanner,
            "tcpdump",
            "-i",
            "sv0",
            "-U",
            "-n",
            "-w",
        ])
        .arg(&cap)
        .args(["src", "host", "198.19.0.1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Forged SYN/ACKs from a target address to the scanner's probe ports,
    // with acknowledgements the cookie never made: they must all be refused.
    let forger = Command::new("timeout")
        .args(["20", "ip", "netns", "exec", &ns.target, "python3", "-c"])
        .arg(
            r#"
import socket, struct, random, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
src, dst = socket.inet_aton("198.18.1.200"), socket.inet_aton("198.19.0.1")
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
rnd = random.Random(5)
end = time.time() + 6
while time.time() < end:
    for _ in range(50):
        sport, dport = rnd.choice([23, 80, 81]), rnd.randrange(61000, 65535)
        h = struct.pack("!HHIIBBHHH", sport, dport, rnd.getrandbits(32), rnd.getrandbits(32), 5 << 4, 0x12, 65535, 0, 0)
        c = csum(src + dst + struct.pack("!BBH", 0, 6, 20) + h)
        h = h[:16] + struct.pack("!H", c) + h[18:]
        s.sendto(h, ("198.19.0.1", 0))
    time.sleep(0.05)
"#,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let out_file = dir.join("syn.jsonl");
    let rate = 1000.0;
    let started = Instant::now();
    let out = Command::new("timeout")
        .args([
            "60",
            "ip",
            "netns",
            "exec",
            &ns.scanner,
            env!("CARGO_BIN_EXE_iotscope"),
            "survey",
        ])
        .args([
            "--mode",
            "syn",
            "--targets",
            "198.18.1.0/24",
            "--ports",
            &port_list,
        ])
        .args(["--rate", "1000", "--timeout", "1s", "--exclude"])
        .arg(&exclude)
        .arg("--output")
        .arg(&out_file)
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the run ends by itself: {stderr}");
    std::thread::sleep(Duration::from_millis(800));
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(dump.id().to_string())
        .status();
    let _ = dump.wait();
    let mut forger = forger;
    let _ = forger.wait();

    // What it reported: exactly the open pairs, each with its service.
    let mut found = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(&out_file).unwrap().lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let ip: std::net::Ipv4Addr = row["ip"].as_str().unwrap().parse().unwrap();
        let port = row["port"].as_u64().unwrap() as u16;
        // Open with a banner; or a lab "noise" device whose answer is no
        // protocol at all (protocol-error).
        let service = match row["status"].as_str().unwrap() {
            "open" => {
                assert!(row["banner"].is_object(), "a banner for {line}");
                row["service"].as_str().unwrap().to_string()
            }
            "protocol-error" => expected.get(&(ip, port)).cloned().unwrap_or_default(),
            other => panic!("status {other}: {line}"),
        };
        let dup = found.insert((ip, port), service);
        assert!(dup.is_none(), "{ip}:{port} reported twice");
    }
    assert_eq!(found, expected, "open pairs and services ({stderr})");

    // What it sent: raw probes (source ports from 61000) to target pairs
    // only, each once; kernel connects (the banner grabs) to open pairs only.
    let fields = Command::new("tshark")
        .arg("-r")
        .arg(&cap)
        .args(["-n", "-T", "fields", "-E", "separator=,"])
        .args([
            "-e",
            "ip.dst",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags",
        ])
        .args(["-e", "frame.time_relative"])
        .output()
        .unwrap();
    let text = String::from_utf8(fields.stdout).unwrap();
    let mut probes: HashMap<(std::net::Ipv4Addr, u16), u32> = HashMap::new();
    let (mut first, mut last) = (f64::MAX, 0f64);
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 5 || f[0].is_empty() {
            continue; // not IPv4
        }
        let dst: std::net::Ipv4Addr = f[0].parse().unwrap();
        let (sport, dport): (u16, u16) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        let flags = u16::from_str_radix(f[3].trim_start_matches("0x"), 16).unwrap();
        if dst == "198.18.1.200".parse::<std::net::Ipv4Addr>().unwrap() && flags & 0x04 != 0 {
            continue; // our kernel resetting a forged SYN/ACK
        }
        assert!(
            dst.octets()[..3] == [198, 18, 1] && !excluded(&dst) && dst.octets()[3] != 0,
            "packet to {dst}, not a target"
        );
        assert!(ports.contains(&dport), "packet to port {dport}");
        if flags & 0x3f == 0x02 && sport >= 61000 {
            *probes.entry((dst, dport)).or_default() += 1;
            let t: f64 = f[4].parse().unwrap();
            (first, last) = (first.min(t), last.max(t));
        } else {
            assert!(
                expected.contains_key(&(dst, dport)),
                "connection to {dst}:{dport}, not open"
            );
        }
    }
    let n = 248 * ports.len();
    assert_eq!(probes.len(), n, "every target pair probed");
    assert!(probes.values().all(|&c| c == 1), "no pair probed twice");
    // The rate held within 5% over the run: n probes at 1000/s span (n-1)/1000 s.
    let span = last - first;
    let want = (n - 1) as f64 / rate;
    assert!(
        (span - want).abs() <= want * 0.05,
        "{n} probes in {span:.3} s, want {want:.3} s at {rate}/s"
    );
    assert!(elapsed < 40.0);
}

/// Issue 13 on the wire: with opt-outs written in four spellings (IPv4,
/// IPv4-mapped, IPv4-compatible and NAT64 IPv6) and targets written in
/// others, not one packet reaches an excluded address, in connect mode,
/// in SYN mode and in `alerts recheck` of alerts raised before the opt-out;
/// and the unspecified address is refused before anything is sent.
#[test]
fn no_packet_reaches_an_excluded_address_in_any_spelling() {
    for tool in ["ip", "tcpdump", "tshark"] {
        if !have(tool) {
            return skip(&format!("{tool} is not installed"));
        }
    }
    if effective_uid() != 0 {
        return skip("not root: network namespaces and raw sockets need it");
    }
    let ns = ScanNet::up();
    let lab = common::RunningLab::start_in(Some(&ns.target), "198.18.3.0/24", 40, 21);
    let dir = lab.dir.path();
    let db = dir.join("s.db");
    let in_scanner = |args: &[&str]| {
        let out = Command::new("timeout")
            .args(["120", "ip", "netns", "exec", &ns.scanner])
            .arg(env!("CARGO_BIN_EXE_iotscope"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ports = "23,80,81,2323,8080";
    // Before the opt-out: a survey with checks raises alerts everywhere.
    let (code, err) = in_scanner(&[
        "survey",
        "--targets",
        "198.18.3.0/24",
        "--ports",
        ports,
        "--rate",
        "0",
        "--timeout",
        "2s",
        "--checks",
        "all",
        "--output",
        "/dev/null",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = in_scanner(&["alerts", "build", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let alerts = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM alerts", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert!(alerts > 0, "the lab has alerts to recheck");
    // The opt-outs: 198.18.3.0/26 in four spellings.
    let opt = dir.join("opt-out.conf");
    std::fs::write(
        &opt,
        "198.18.3.0/28 # ticket 1\n::ffff:198.18.3.16/124 # ticket 2\n\
         ::198.18.3.32/124 # ticket 3\n64:ff9b::198.18.3.48/124 # ticket 4\n",
    )
    .unwrap();
    let excluded = |ip: &str| {
        ip.strip_prefix("198.18.3.")
            .and_then(|l| l.parse::<u8>().ok())
            .is_some_and(|l| l < 64)
    };
    let cap = dir.join("after.pcap");
    let mut dump = Command::new("ip")
        .args([
            "netns", "exec", &ns.target, "tcpdump", "-i", "tv0", "-U", "-n", "-w",
        ])
        .arg(&cap)
        .args(["src", "host", "198.19.0.1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let o = opt.to_str().unwrap();
    for targets in [
        &["::ffff:198.18.3.0/120"][..],
        &["198.18.3.0/24", "::ffff:198.18.3.5", "::198.18.3.20"][..],
    ] {
        for mode in ["connect", "syn"] {
            let mut args = vec!["survey", "--mode", mode, "--ports", ports, "--rate", "2000"];
            args.extend([
                "--timeout",
                "1s",
                "--exclude",
                o,
                "--output",
                "/dev/null",
                "--targets",
            ]);
            args.extend(targets);
            let (code, err) = in_scanner(&args);
            assert_eq!(code, Some(0), "{mode} {targets:?}: {err}");
        }
    }
    let (code, err) = in_scanner(&[
        "alerts",
        "recheck",
        "--timeout",
        "1s",
        "--exclude",
        o,
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("skipped (excluded)") && !err.contains(" 0 skipped"),
        "{err}"
    );
    for t in ["0.0.0.0", "::", "::ffff:0.0.0.0"] {
        let (code, err) = in_scanner(&["survey", "--targets", t, "--ports", "23", "--rate", "0"]);
        assert_eq!(code, Some(2), "{t}: {err}");
    }
    std::thread::sleep(Duration::from_millis(800));
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(dump.id().to_string())
        .status();
    let _ = dump.wait();
    let fields = Command::new("tshark")
        .args(["-r"])
        .arg(&cap)
        .args(["-T", "fields", "-e", "ip.dst", "-e", "ipv6.dst"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fields.stdout);
    let dsts: Vec<&str> = text
        .lines()
        .flat_map(|l| l.split('\t'))
        .filter(|f| !f.is_empty())
        .collect();
    assert!(
        dsts.iter().any(|d| d.starts_with("198.18.3.")),
        "the capture saw the sweeps"
    );
    let bad: Vec<&&str> = dsts
        .iter()
        .filter(|d| excluded(d) || d.starts_with("0.") || d.contains(':'))
        .collect();
    assert!(bad.is_empty(), "packets to excluded addresses: {bad:?}");
}
